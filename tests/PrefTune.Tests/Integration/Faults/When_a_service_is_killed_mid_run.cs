using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// A stage service dies without warning (SIGKILL) in the middle of a run and a new process of the same role is
/// started: the request it held goes back to its queue, the new process answers it, and the run completes with
/// a stream that satisfies <see cref="RunInvariants"/>.
/// </summary>
[Collection(FaultsCollection.Name)]
public sealed class When_a_service_is_killed_mid_run(FaultServers servers, ITestOutputHelper output)
{
    /// <summary>How long the orchestrator may take to finish after the replacement started.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(50);

    [Fact]
    public Task The_run_completes_after_the_sampler_is_killed_and_replaced() => KillAndReplaceAsync("sampler");

    [Fact]
    public Task The_run_completes_after_the_learner_is_killed_and_replaced() => KillAndReplaceAsync("learner");

    /// <summary>The language model's rollouts and checkpoints take the same road: a killed Learner rebuilds from the
    /// stored transient copy and its trainer state, a killed Sampler's request is answered by the next one.</summary>
    [Theory]
    [InlineData("sampler")]
    [InlineData("learner")]
    public Task A_language_model_run_completes_after_a_service_is_killed_and_replaced(string role) =>
        KillAndReplaceAsync(role, FaultRun.LanguageModelExperiment(), FaultRun.LanguageModelGradientSteps);

    private async Task KillAndReplaceAsync(string role, string? experiment = null, int steps = FaultRun.GradientSteps)
    {
        await using var run = await FaultRun.StartAsync(servers, output, $"{role}-killed{(experiment is null ? "" : "-lm")}", experiment, steps);
        var before = await run.WaitForUpdatesAsync(FaultRun.UpdatesBeforeFault, TimeSpan.FromSeconds(60));
        Assert.True(before < steps && !run.Orchestrator.HasExited, "the run ended before the fault: make it longer");

        run.Service(role).Kill();
        await run.AssertFaultCameMidRunAsync($"{role} killed");
        run.StartService(role);

        await run.WaitForOrchestratorAsync(Deadline);
        await run.AssertCompletedAsync();
    }
}

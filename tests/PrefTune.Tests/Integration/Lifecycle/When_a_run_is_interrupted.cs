using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Faults;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Lifecycle;

/// <summary>
/// SIGINT (Ctrl-C) or SIGTERM during `preftune run` stops it: the run is recorded as stopped by that signal, the
/// process exits 128 + signal, child services stop with it, and `preftune resume` completes the run with exactly
/// the checkpoints (version and SHA-256) of the same spec run without interruption.
/// </summary>
[Collection(FaultsCollection.Name)]
public sealed class When_a_run_is_interrupted(FaultServers servers, ITestOutputHelper output)
{
    private const int Steps = 100;

    [Theory]
    [InlineData(2, "SIGINT", false)]
    [InlineData(15, "SIGTERM", true)]
    public async Task It_stops_recorded_as_interrupted_and_resumes_to_the_uninterrupted_hashes(int signal, string name, bool broker)
    {
        await using var world = await LifecycleRun.CreateAsync(servers, output, name.ToLowerInvariant(), LifecycleRun.Experiment(Steps, "reinforce"));
        string[] hosting = broker ? ["--broker", world.Broker] : [];
        var run = world.Start("interrupted", ["run", world.File, "--json", "--output", Path.Combine(world.Folder, "out"), .. hosting]);
        await world.WaitForAsync("update_applied", 10, run, TimeSpan.FromSeconds(90));
        var children = LifecycleRun.ChildrenOf(run.Id);
        if (broker) Assert.Equal(3, children.Count);

        run.Signal(signal);
        Assert.True(await run.WaitForExitAsync(TimeSpan.FromSeconds(45)), $"still running 45 s after {name}\n{world.Diagnostics()}");
        world.Note($"exited with {run.ExitCode} after {name}");
        Assert.True(run.ExitCode == 128 + signal, $"exit code {run.ExitCode} after {name}\n{world.Diagnostics()}");
        Assert.Empty(await LifecycleRun.WaitUntilGoneAsync(children, TimeSpan.FromSeconds(10)));

        var stopped = Assert.Single(await world.RunsAsync());
        var last = Assert.IsType<RunStopped>(stopped.Events[^1]);
        Assert.Equal(("interrupted", name), (last.Reason, last.Signal));
        Assert.InRange(stopped.Updates.Count, 10, Steps - 1);
        Assert.Empty(RunAudit.Check(stopped, mustBeComplete: false));
        Assert.Contains($"preftune resume {stopped.Started.RunId}", run.Error);
        Assert.Equal("stopped", (await world.ListedStatusesAsync())[stopped.Started.RunId]);

        var resume = await world.RunToEndAsync(TimeSpan.FromSeconds(120), "resume", stopped.Started.RunId.ToString(), "--json");
        Assert.True(resume.ExitCode == 0, resume.Error);
        var uninterrupted = await world.RunToEndAsync(TimeSpan.FromSeconds(120), "run", world.File, "--json", "--output", Path.Combine(world.Folder, "again"));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.Error);

        var runs = await world.RunsAsync();
        var (resumed, reference) = (runs[0], runs[1]);
        Assert.Equal(stopped.Started.RunId, resumed.Started.RunId);
        Assert.Empty(RunAudit.Check(resumed));
        Assert.Single(resumed.Events.OfType<RunResumed>());
        Assert.Equal(Steps / 2 + 1, reference.Checkpoints.Count); // one per batch of two gradient steps, and the initial policy
        Assert.Equal(reference.Checkpoints.Select(c => (c.Version, c.Sha256)), resumed.Checkpoints.Select(c => (c.Version, c.Sha256)));
    }
}

using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// The broker or the database goes away in the middle of a run and comes back with its state. The services
/// and the orchestrator keep running throughout; nothing is restarted but the server.
/// </summary>
[Collection(FaultsCollection.Name)]
public sealed class When_a_server_restarts_mid_run(FaultServers servers, ITestOutputHelper output)
{
    /// <summary>How long the orchestrator may take to finish once the server is back.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(45);

    /// <summary>RabbitMQ down for 5 s (plus its stop and start), durable queues and persistent messages kept: the run completes.</summary>
    [Fact]
    public async Task The_run_completes_after_RabbitMQ_is_stopped_and_started_again()
    {
        await using var run = await FaultRun.StartAsync(servers, output, "rabbitmq-restart");
        var before = await run.WaitForUpdatesAsync(FaultRun.UpdatesBeforeFault, TimeSpan.FromSeconds(45));
        Assert.True(before < FaultRun.GradientSteps && !run.Orchestrator.HasExited, "the run ended before the fault: make it longer");

        await servers.StopRabbitMqAsync();
        await run.AssertFaultCameMidRunAsync("RabbitMQ stopped");
        await Task.Delay(TimeSpan.FromSeconds(5));
        await servers.StartRabbitMqAsync();
        run.Note("started RabbitMQ again (state kept)");

        await run.WaitForOrchestratorAsync(Deadline);
        await run.AssertCompletedAsync();
    }

    /// <summary>
    /// PostgreSQL (event store and checkpoints) stopped, 3 s, started again with its data: the run either completes
    /// or fails recording why, and the orchestrator exits within the deadline either way (it never hangs).
    /// </summary>
    [Fact]
    public async Task The_run_completes_or_fails_with_a_recorded_reason_after_PostgreSQL_restarts()
    {
        await using var run = await FaultRun.StartAsync(servers, output, "postgres-restart");
        var before = await run.WaitForUpdatesAsync(FaultRun.UpdatesBeforeFault, TimeSpan.FromSeconds(45));
        Assert.True(before < FaultRun.GradientSteps && !run.Orchestrator.HasExited, "the run ended before the fault: make it longer");

        await servers.StopPostgresAsync();
        run.Note("stopped PostgreSQL");
        await Task.Delay(TimeSpan.FromSeconds(3));
        await servers.StartPostgresAsync();
        run.Note("started PostgreSQL again (data kept)");

        await run.WaitForOrchestratorAsync(Deadline);
        var outcome = await run.AssertCompletedOrFailedWithReasonAsync();
        run.Note(outcome);
    }
}

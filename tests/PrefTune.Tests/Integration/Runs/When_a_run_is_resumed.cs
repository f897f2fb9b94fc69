using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

/// <summary>
/// An Orchestrator that stops mid-run (here: its token is cancelled, the run records RunStopped "cancelled", and the
/// session is disposed; the lifecycle tests SIGKILL real processes instead) is
/// continued by a new one from the event stream and the last checkpoint. The continued run must end exactly where
/// the uninterrupted run with the same spec ends: same weights, bit for bit.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_a_run_is_resumed(PostgresServer postgres)
{
    [Theory]
    [InlineData("reinforce", DataSource.Online, 0)]
    [InlineData("reinforce", DataSource.Online, 2)]
    [InlineData("dpo", DataSource.Offline, 0)]
    public async Task It_completes_with_the_weights_the_uninterrupted_run_reaches(string method, DataSource data, int maxStaleness)
    {
        var spec = TinyRuns.Bandit(method, data, steps: 20);
        spec = spec with { Loop = spec.Loop with { MaxStaleness = maxStaleness } };
        var options = RunsUnderTest.Options(postgres);

        Guid runId;
        await using (var first = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None))
            runId = await RunsUnderTest.InterruptAsync(first, spec, atStep: 8);

        await using var second = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var stopped = (await RecordedRun.LoadAsync(second.Store, runId, CancellationToken.None))!;
        Assert.False(stopped.Completed);
        Assert.InRange(stopped.Checkpoints[^1].Version, 8, 19);
        var resumed = await second.ResumeAsync(stopped, null, CancellationToken.None);
        var uninterrupted = await second.RunAsync(spec, null, CancellationToken.None);

        Assert.Equal("completed", resumed.Status);
        var after = (await RecordedRun.LoadAsync(second.Store, runId, CancellationToken.None))!;
        var reference = (await RecordedRun.LoadAsync(second.Store, uninterrupted.RunId, CancellationToken.None))!;
        Assert.Empty(RunAudit.Check(after));
        Assert.Single(after.Events.OfType<RunResumed>());
        Assert.Equal(reference.Checkpoints.Select(c => (c.Version, c.Sha256)), after.Checkpoints.Select(c => (c.Version, c.Sha256)));
        Assert.Equal(reference.Evaluations.Select(e => e.MeanGoldReward), after.Evaluations.Select(e => e.MeanGoldReward));
    }

    [Fact]
    public async Task A_completed_run_is_not_resumed()
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var done = await session.RunAsync(TinyRuns.Bandit("reinforce", DataSource.Online, steps: 4), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, done.RunId, CancellationToken.None))!;
        var error = await Assert.ThrowsAsync<ArgumentException>(() => session.ResumeAsync(recorded, null, CancellationToken.None));
        Assert.Contains(done.RunId.ToString(), error.Message);
    }
}

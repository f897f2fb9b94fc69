using PrefTune.Messages;
using PrefTune.Orchestrator.Cli;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

[Collection(PostgresCollection.Name)]
public sealed class When_a_run_is_replayed(PostgresServer postgres)
{
    [Theory]
    [InlineData("reinforce", DataSource.Online)]
    [InlineData("dpo", DataSource.Offline)]
    public async Task Every_checkpoint_hash_is_reproduced_from_the_recorded_batches_alone(string method, DataSource data)
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(TinyRuns.Bandit(method, data), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        var report = await session.ReplayExactlyAsync(recorded, CancellationToken.None);

        Assert.Empty(report.Caveats);
        Assert.Equal(1 + recorded.Assembled.Count, report.Checkpoints.Count);   // version 0 and one per batch
        Assert.All(report.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));
        Assert.Equal(recorded.Checkpoints.Select(c => c.Version), report.Checkpoints.Select(c => c.Version));
        var again = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;
        var replayed = Assert.Single(again.Events.OfType<RunReplayed>());
        Assert.Equal((report.Checkpoints.Count, report.Checkpoints.Count, (int?)null), (replayed.Checkpoints, replayed.Matched, replayed.FirstMismatch));
    }

    [Fact]
    public async Task Another_method_trains_on_the_identical_samples_as_a_linked_run()
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var source = await session.RunAsync(TinyRuns.Bandit("reinforce", DataSource.Online), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, source.RunId, CancellationToken.None))!;

        var spec = ReplayCommand.Counterfactual(recorded.Started.Spec, "dpo", ["beta=0.05"]);
        var replay = await session.ReplayAsync(spec, recorded, null, CancellationToken.None);
        var replayed = (await RecordedRun.LoadAsync(session.Store, replay.RunId, CancellationToken.None))!;

        Assert.Equal("completed", replay.Status);
        Assert.Equal(source.RunId, replayed.Started.ReplayOf);
        Assert.Equal("dpo", replayed.Started.Spec.Method.Name);
        Assert.Equal(0.05, replayed.Started.Spec.Method.Parameters["beta"]);
        // Same batches, same minibatch order: step k of the replay used exactly the samples step k of the source used.
        Assert.Equal(source.Updates.Count, replay.Updates.Count);
        for (var k = 0; k < source.Updates.Count; k++)
            Assert.Equal(source.Updates[k].SampleIds, replay.Updates[k].SampleIds);
        // ...but another loss: the weights went elsewhere.
        Assert.NotEqual(recorded.Checkpoints[^1].Sha256, replayed.Checkpoints[^1].Sha256);
        Assert.Empty(RunAudit.Check(replayed));
        Assert.Empty(RunAudit.Check(recorded));
    }

    [Fact]
    public void A_counterfactual_hyperparameter_the_method_does_not_have_is_refused_by_name()
    {
        var spec = TinyRuns.Bandit("reinforce", DataSource.Online);
        var error = Assert.Throws<ArgumentException>(() => ReplayCommand.Counterfactual(spec, "dpo", ["tau=2"]));
        Assert.Contains("tau", error.Message);
        Assert.Contains("beta", error.Message);
        Assert.Throws<ArgumentException>(() => ReplayCommand.Counterfactual(spec, "no-such-method", []));
    }
}

using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

/// <summary>max_staleness K: the Sampler may run K policy versions ahead of the Learner, never more.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_sampler_runs_ahead(PostgresServer postgres)
{
    [Fact]
    public async Task At_K_0_every_sample_is_trained_by_the_policy_that_drew_it()
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(RunsUnderTest.OneStepPerBatch(maxStaleness: 0), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;
        var record = (await RunHistory.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.All(RunsUnderTest.BatchStaleness(recorded), s => Assert.Equal(0, s));
        Assert.Equal((0, 0), (record.Staleness.LagMin, record.Staleness.LagMax));
        Assert.Empty(RunAudit.Check(recorded));
    }

    [Fact]
    public async Task At_K_2_the_lag_never_exceeds_2_reaches_it_and_the_run_is_reproducible()
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var spec = RunsUnderTest.OneStepPerBatch(maxStaleness: 2);
        var first = await session.RunAsync(spec, null, CancellationToken.None);
        var second = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, first.RunId, CancellationToken.None))!;
        var record = (await RunHistory.LoadAsync(session.Store, first.RunId, CancellationToken.None))!;

        var staleness = RunsUnderTest.BatchStaleness(recorded);
        Assert.All(staleness, s => Assert.InRange(s, 0, 2));
        // batches 0..2 are drawn from version 0 (lag 0, 1, 2); from then on exactly K behind
        Assert.Equal([0, 1, 2, 2, 2], recorded.Assembled.Take(5).Select(a => a.PolicyVersion - SampledAt(recorded, a)));
        Assert.Equal(2, record.Staleness.LagMax);
        Assert.Empty(RunAudit.Check(recorded));
        Assert.Equal(first.Evaluations.Select(e => e.MeanGoldReward), second.Evaluations.Select(e => e.MeanGoldReward));
    }

    private static int SampledAt(RecordedRun run, PrefTune.Messages.TrainingBatchAssembled batch) =>
        run.Events.OfType<PrefTune.Messages.RolloutsGenerated>().SelectMany(g => g.Rollouts).First(r => r.SampleId == batch.SampleIds[0]).PolicyVersion;
}

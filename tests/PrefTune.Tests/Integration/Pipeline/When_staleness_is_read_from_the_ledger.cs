using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>The <see cref="RunLedger"/> projection over real runs, checked against lags worked out by hand.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_staleness_is_read_from_the_ledger(PostgresServer postgres)
{
    private PrefTuneOptions Options() => new()
    {
        Database = postgres.ConnectionString,
        Schema = PostgresServer.NewSchema(),
        StageTimeoutSeconds = 60,
    };

    private async Task<RunLedger> LedgerOfAsync(RunSpec spec)
    {
        var options = Options();
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        Assert.Equal("completed", outcome.Status);
        return await RunHistory.LoadLedgerAsync(session.Store, outcome.RunId, CancellationToken.None);
    }

    /// <summary>B = 40, M = 10, T = 2, online: each iteration samples at version 8i, then steps 8i+1 .. 8i+8.</summary>
    private static RunSpec ReusedTwice()
    {
        var tiny = TinyRuns.Bandit("reinforce", DataSource.Online, steps: 16);
        return tiny with { Loop = tiny.Loop with { B = 40, M = 10, T = 2 } };
    }

    [Fact]
    public async Task Each_step_sees_its_samples_as_old_as_the_steps_since_they_were_drawn()
    {
        var ledger = await LedgerOfAsync(ReusedTwice());

        Assert.Equal(Enumerable.Range(1, 16), ledger.Steps.Select(s => s.Step));
        foreach (var step in ledger.Steps)
        {
            // the j-th step of an iteration: pass j / 4, minibatch j % 4, every sample j versions old
            var j = (step.Step - 1) % 8;
            Assert.Equal((j / 4, j % 4), (step.Pass, step.Minibatch));
            Assert.Equal(Enumerable.Repeat(j, 10), step.Lags);
            Assert.Equal((j, (double)j, j), (step.LagMin, step.LagMean, step.LagMax));
            Assert.Equal(step.Step - 1, step.VersionBefore);
        }
        Assert.Equal([0, 1, 2, 3], ledger.Steps.Where(s => s.Pass == 0).Select(s => s.LagMin).Distinct());
        Assert.Equal([4, 5, 6, 7], ledger.Steps.Where(s => s.Pass == 1).Select(s => s.LagMin).Distinct());
    }

    [Fact]
    public async Task Every_sample_is_used_once_per_pass_and_on_policy_samples_have_ratio_one()
    {
        var ledger = await LedgerOfAsync(ReusedTwice());

        Assert.Equal(2 * 40, ledger.Samples.Count);
        Assert.All(ledger.Samples.Values, sample =>
        {
            Assert.Equal([0, 1], sample.Uses.Select(u => u.Pass));
            Assert.All(sample.Uses, u => Assert.Equal(u.VersionBefore - sample.SamplingVersion, u.Lag));
            Assert.All(sample.Uses, u => Assert.NotNull(u.LogRatio));
        });
        var uses = ledger.Samples.Values.SelectMany(s => s.Uses).ToList();
        // lag 0 is the first minibatch of an iteration: the learner still holds the sampling weights, ratio 1
        var onPolicy = uses.Where(u => u.Lag == 0).ToList();
        Assert.Equal(2 * 10, onPolicy.Count);
        Assert.All(onPolicy, u => Assert.Equal(0, u.LogRatio!.Value, 1e-5));
        Assert.All(onPolicy, u => Assert.Equal(1, u.ImportanceRatio!.Value, 1e-5));
        // once the learner has moved, the ratios move with it
        Assert.Contains(uses, u => u.Lag > 0 && Math.Abs(u.LogRatio!.Value) > 1e-3);

        var staleness = ledger.Staleness();
        Assert.Equal(2 * 10 * 8, staleness.ImportanceRatio!.Count);
        Assert.Equal(new Dictionary<int, int> { [2] = 2 * 40 }, staleness.ReuseHistogram);
        Assert.Equal(Enumerable.Range(0, 8).ToDictionary(lag => lag, _ => 2 * 10), staleness.LagHistogram);
    }

    [Fact]
    public async Task An_online_batch_is_fresh_when_handed_over_and_an_offline_one_is_as_old_as_the_learner()
    {
        var online = await LedgerOfAsync(ReusedTwice());
        var offline = await LedgerOfAsync(TinyRuns.Bandit("best-of-n", DataSource.Offline));

        Assert.Equal([0, 8], online.Batches.Select(b => b.PolicyVersion));
        Assert.All(online.Batches, b => Assert.Equal((0, 0, 40), (b.StalenessMin, b.StalenessMax, b.Samples)));
        Assert.Equal(0, online.Staleness().StalenessMax);

        // B = 20, M = 10, T = 1 from D_pref, sampled once by the reference (version 0): batch i is handed over at 2i
        Assert.Equal([0, 2, 4, 6, 8, 10], offline.Batches.Select(b => b.PolicyVersion));
        Assert.All(offline.Batches, b => Assert.Equal((b.PolicyVersion, b.PolicyVersion), (b.StalenessMin, b.StalenessMax)));
        var staleness = offline.Staleness();
        Assert.Equal((0, 5.0, 10), (staleness.StalenessMin, staleness.StalenessMean, staleness.StalenessMax));
        Assert.Equal((0, 11), (staleness.LagMin, staleness.LagMax));
        Assert.Equal(8 * 10, staleness.ReuseHistogram.Values.Sum());                   // every dataset sample, used or not
        Assert.Equal(12 * 10, staleness.ReuseHistogram.Sum(h => h.Key * h.Value));
    }

    [Fact]
    public async Task The_lineage_of_a_version_is_every_step_up_to_it()
    {
        var tiny = TinyRuns.Bandit("dpo", DataSource.Online, steps: 6);
        var ledger = await LedgerOfAsync(tiny with { Loop = tiny.Loop with { B = 10, M = 10 } });

        var lineage = ledger.LineageOf(3);

        Assert.NotNull(lineage);
        Assert.Equal(3, lineage.Checkpoint.Version);
        Assert.Equal([1, 2, 3], lineage.Updates.Select(u => u.Step));
        Assert.Equal(30, lineage.Updates.SelectMany(u => u.SampleIds).Distinct().Count());
        Assert.Equal([0, 1, 2], lineage.Updates.Select(u => Assert.Single(u.SamplingVersions.Distinct())));
        Assert.Null(ledger.LineageOf(7));
    }
}

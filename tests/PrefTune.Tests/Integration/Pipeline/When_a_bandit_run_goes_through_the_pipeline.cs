using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

[Collection(PostgresCollection.Name)]
public sealed class When_a_bandit_run_goes_through_the_pipeline(PostgresServer postgres)
{
    private PrefTuneOptions Options() => new()
    {
        Database = postgres.ConnectionString,
        Schema = "t_" + Guid.NewGuid().ToString("N")[..12],
        StageTimeoutSeconds = 60,
    };

    [Theory]
    [InlineData("dpo", DataSource.Online)]
    [InlineData("reinforce", DataSource.Online)]
    [InlineData("best-of-n", DataSource.Offline)]
    [InlineData("pref-ft", DataSource.Offline)]
    public async Task Every_batch_and_update_is_in_the_event_store(string method, DataSource data)
    {
        var spec = TinyRuns.Bandit(method, data);
        await using var session = await PipelineSession.StartAsync(Options(), ServiceHosting.InProcess, CancellationToken.None);

        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var record = await RunHistory.LoadAsync(session.Store, outcome.RunId, CancellationToken.None);

        Assert.Equal("completed", outcome.Status);
        Assert.NotNull(record);
        var counts = record.Counts;
        const int iterations = 6, stepsPerIteration = 2, b = 20, m = 10;
        Assert.Equal(iterations * stepsPerIteration, counts.Updates);
        Assert.Equal(counts.Updates * m, counts.SamplesConsumed);
        Assert.Equal(iterations, counts.BatchesAssembled);
        Assert.Equal(1 + iterations, counts.Checkpoints);
        Assert.Equal(4, counts.Evaluations);                       // steps 0, 4, 8, 12
        if (data == DataSource.Online)
        {
            Assert.Equal(iterations, counts.TrainingBatches);
            Assert.Equal(iterations * b, counts.SamplesGenerated);
        }
        else
        {
            Assert.Equal(0, counts.TrainingBatches);
            Assert.Equal(1, counts.DatasetBatches);
            Assert.Equal(spec.Loop.DatasetPrompts * spec.Loop.DatasetResponses, counts.SamplesGenerated);
        }
        Assert.Equal(counts.SamplesGenerated, counts.SamplesScored);
        Assert.Equal(outcome.SamplesDrawn, counts.SamplesGenerated);
        Assert.Equal(outcome.Evaluations.Select(e => e.MeanGoldReward), record.Outcome.Evaluations.Select(e => e.MeanGoldReward));
        Assert.Equal("completed", record.Outcome.Status);
        // The step-0 policy is the reference: KL(pi || pi_ref) is exactly 0; training moves it away.
        Assert.Equal(0, outcome.Evaluations[0].Metrics["eval/objective/kl"], 5);
        Assert.True(outcome.Evaluations[^1].Metrics["eval/objective/kl"] > 0.001);
        Assert.Equal(outcome.Evaluations[0].Entropy, outcome.Evaluations[0].Metrics["eval/objective/entropy"]);
    }

    [Fact]
    public async Task Staleness_and_reuse_are_measured_from_the_record()
    {
        // B = 40, M = 10, T = 2: each sampling round feeds 4 minibatches x 2 passes = 8 gradient steps, so the
        // j-th step after a sampling round uses samples j versions old, and every sample is used twice.
        var tiny = TinyRuns.Bandit("reinforce", DataSource.Online, steps: 16);
        var spec = tiny with { Loop = tiny.Loop with { B = 40, M = 10, T = 2 } };
        await using var session = await PipelineSession.StartAsync(Options(), ServiceHosting.InProcess, CancellationToken.None);

        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var staleness = (await RunHistory.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!.Staleness;

        Assert.Equal(Enumerable.Range(0, 8).ToDictionary(lag => lag, _ => 2 * 10), staleness.LagHistogram);
        Assert.Equal((0, 3.5, 7), (staleness.LagMin, staleness.LagMean, staleness.LagMax));
        Assert.Equal(new Dictionary<int, int> { [2] = 2 * 40 }, staleness.ReuseHistogram);
    }

    [Fact]
    public async Task The_same_seed_gives_the_same_numbers_and_checkpoints()
    {
        var spec = TinyRuns.Bandit("dpo", DataSource.Online);
        await using var session = await PipelineSession.StartAsync(Options(), ServiceHosting.InProcess, CancellationToken.None);

        var first = await session.RunAsync(spec, null, CancellationToken.None);
        var second = await session.RunAsync(spec, null, CancellationToken.None);
        var otherSeed = await session.RunAsync(spec with { Seed = spec.Seed + 1 }, null, CancellationToken.None);

        Assert.Equal(first.Evaluations.Select(e => e.MeanGoldReward), second.Evaluations.Select(e => e.MeanGoldReward));
        Assert.Equal(first.Updates.Select(u => u.Loss), second.Updates.Select(u => u.Loss));
        Assert.NotEqual(first.Updates.Select(u => u.Loss), otherSeed.Updates.Select(u => u.Loss));
        var firstHashes = await CheckpointHashesAsync(session, first.RunId);
        Assert.Equal(firstHashes, await CheckpointHashesAsync(session, second.RunId));
    }

    [Fact]
    public async Task A_stage_that_throws_fails_the_run_with_the_reason_recorded()
    {
        var spec = TinyRuns.Bandit("dpo", DataSource.Online) with
        {
            Method = new MethodSpec { Name = "no-such-method", Data = DataSource.Online },
        };
        await using var session = await PipelineSession.StartAsync(Options(), ServiceHosting.InProcess, CancellationToken.None);

        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var record = await RunHistory.LoadAsync(session.Store, outcome.RunId, CancellationToken.None);

        Assert.Equal("failed", outcome.Status);
        Assert.Contains("learner", outcome.FailureReason);
        Assert.Contains("no-such-method", outcome.FailureReason);
        Assert.Equal("failed", record!.Outcome.Status);
        Assert.Contains("no-such-method", record.Outcome.FailureReason);
        Assert.Equal(0, record.Counts.Updates);
    }

    [Fact]
    public async Task An_unreachable_database_is_named_within_seconds()
    {
        var options = Options() with { Database = "Host=127.0.0.1;Port=1;Username=postgres;Database=postgres", ConnectTimeoutSeconds = 2 };
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None));

        Assert.Contains("127.0.0.1:1", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task An_unreachable_broker_is_named_within_seconds()
    {
        var options = Options() with { Broker = "amqp://guest:guest@127.0.0.1:1/", ConnectTimeoutSeconds = 2 };
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => PipelineSession.StartAsync(options, ServiceHosting.ChildProcesses, CancellationToken.None));

        Assert.Contains("127.0.0.1:1", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
    }

    private static async Task<List<string>> CheckpointHashesAsync(PipelineSession session, Guid runId)
    {
        await using var query = session.Store.QuerySession();
        var events = await query.Events.FetchStreamAsync(runId);
        return events.Select(e => e.Data).OfType<CheckpointPublished>().Select(c => c.Checkpoint.Sha256).ToList();
    }
}

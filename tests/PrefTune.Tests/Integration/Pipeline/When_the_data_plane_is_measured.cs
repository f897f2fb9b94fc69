using PrefTune.Messages;
using PrefTune.Orchestrator.Bench;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>`bench --data-plane` on a real run in one process: the wire tally sees each stage call once, and the
/// event store's sizes cover every event of the run's stream and nothing else.</summary>
[Collection(ServersCollection.Name)]
public sealed class When_the_data_plane_is_measured(PostgresServer postgres)
{
    [Fact]
    public async Task The_wire_and_the_store_account_for_the_whole_run()
    {
        var spec = TinyRuns.Bandit("reinforce", DataSource.Online);
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = "t_" + Guid.NewGuid().ToString("N")[..12], StageTimeoutSeconds = 60 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var tally = new WireTally();
        RunOutcome outcome;
        using (WireObserver.Connect(session.Bus, tally))
            outcome = await session.RunAsync(spec, null, CancellationToken.None);
        // A run after the observer is gone adds nothing.
        await session.RunAsync(spec with { Seed = 8 }, null, CancellationToken.None);

        Assert.Equal("completed", outcome.Status);
        var recorded = await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None);
        Assert.NotNull(recorded);
        int Messages(string type, WirePurpose purpose) => tally.Rows.Where(r => r.MessageType == type && r.Purpose == purpose).Sum(r => r.Messages);
        var batches = recorded.Trained.Count;
        Assert.Equal(batches, Messages(nameof(TrainPolicy), WirePurpose.Training));
        Assert.Equal(batches, Messages(nameof(PolicyTrained), WirePurpose.Training));
        Assert.Equal(batches, Messages(nameof(SampleRollouts), WirePurpose.Training));
        // an evaluation is one request and one answer, and the Sampler's one hop to the Scorer; its rollouts never reach the Orchestrator
        Assert.Equal(recorded.Evaluations.Count, Messages(nameof(EvaluatePolicy), WirePurpose.Evaluation));
        Assert.Equal(recorded.Evaluations.Count, Messages(nameof(EvaluationSummarized), WirePurpose.Evaluation));
        Assert.Equal(recorded.Evaluations.Count, Messages(nameof(ScoreRollouts), WirePurpose.Evaluation));
        Assert.Equal(0, Messages(nameof(SampleRollouts), WirePurpose.Evaluation));
        Assert.Equal(1, Messages(nameof(InitializePolicy), WirePurpose.Setup));
        Assert.Equal(recorded.Checkpoints.Count, Messages(nameof(CheckpointPublished), WirePurpose.Training));
        Assert.All(tally.Rows, r => Assert.True(r.Bytes > 0, $"{r.MessageType} {r.Purpose}: no bytes"));

        var stored = await DataPlaneBench.StoredEventsAsync(options.Database!, options.Schema, outcome.RunId, CancellationToken.None);
        Assert.Equal(recorded.Events.Count, stored.Sum(r => r.Events));
        Assert.Equal(batches, stored.Single(r => r.EventType == "policy_trained").Events);
        Assert.All(stored, r => Assert.True(r.StoredBytes > 0 && r.TextBytes > 0, $"{r.EventType}: no bytes"));
    }
}

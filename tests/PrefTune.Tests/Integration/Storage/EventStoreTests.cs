using System.Diagnostics;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Storage;

[Collection(PostgresCollection.Name)]
public sealed class When_a_run_is_recorded(PostgresServer server, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private DocumentStore _store = null!;

    public Task InitializeAsync()
    {
        _store = EventStoreRegistration.For(server.ConnectionString, _schema);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _store.Dispose();
        await server.DropSchemaAsync(_schema);
    }

    /// <summary>Marten stores these names in mt_events.type: changing one orphans every recorded run.</summary>
    public static TheoryData<Type, string> StoredNames => new()
    {
        { typeof(RunStarted), "run_started" },
        { typeof(PolicyInitialized), "policy_initialized" },
        { typeof(CheckpointPublished), "checkpoint_published" },
        { typeof(RolloutsGenerated), "rollouts_generated" },
        { typeof(RolloutsScored), "rollouts_scored" },
        { typeof(TrainingBatchAssembled), "training_batch_assembled" },
        { typeof(UpdateApplied), "update_applied" },
        { typeof(PolicyTrained), "policy_trained" },
        { typeof(PolicyEvaluated), "policy_evaluated" },
        { typeof(RunCompleted), "run_completed" },
        { typeof(RunFailed), "run_failed" },
        { typeof(RunResumed), "run_resumed" },
        { typeof(RunReplayed), "run_replayed" },
        { typeof(RunStopped), "run_stopped" },
        { typeof(ServiceRestarted), "service_restarted" },
        { typeof(StudyStarted), "study_started" },
        { typeof(StudyRunFinished), "study_run_finished" },
        { typeof(StudyCompleted), "study_completed" },
        { typeof(StudyTaskPrepared), "study_task_prepared" },
        { typeof(PreferenceDatasetBuilt), "preference_dataset_built" },
        { typeof(RewardModelTrained), "reward_model_trained" },
        { typeof(PolicyFineTuned), "policy_fine_tuned" },
    };

    [Theory]
    [MemberData(nameof(StoredNames))]
    public void Should_keep_the_stored_event_type_names(Type eventType, string storedName)
    {
        var options = EventStoreRegistration.Options(server.ConnectionString, _schema);
        var events = Assert.IsType<Marten.Events.EventGraph>(options.Events);
        Assert.Equal(storedName, events.EventMappingFor(eventType).EventTypeName);
    }

    [Fact]
    public void Should_register_every_pinned_event()
    {
        Assert.Equal(StoredNames.Select(row => (Type)row[0]).OrderBy(t => t.Name), EventStoreRegistration.RecordedEvents.OrderBy(t => t.Name));
    }

    [Fact]
    public async Task Should_count_the_run_in_its_summary()
    {
        var run = RunEvents.Completed(Guid.NewGuid());
        await AppendAsync(run.RunId, run.Events);

        await using var session = _store.QuerySession();
        var summary = Assert.Single(await session.Query<RunSummary>().ToListAsync());
        Assert.Equal(run.RunId, summary.Id);
        Assert.Equal("exp.yaml", summary.Experiment);
        Assert.Equal("dpo (online)", summary.Label);
        Assert.Equal("dpo", summary.Method);
        Assert.Equal(DataSource.Online, summary.Data);
        Assert.Equal(7, summary.Seed);
        Assert.Equal("completed", summary.Status);
        Assert.Null(summary.FailureReason);
        Assert.Equal(RunEvents.Start, summary.StartedAt);
        Assert.Equal(RunEvents.Start.AddMinutes(1), summary.EndedAt);
        Assert.Equal(2, summary.TrainingBatches);
        Assert.Equal(1, summary.DatasetBatches);
        Assert.Equal(1, summary.EvaluationBatches);
        Assert.Equal(2 * 10 + 30, summary.SamplesGenerated);
        Assert.Equal(2 * 10 + 30, summary.SamplesScored);
        Assert.Equal(5, summary.EvaluationSamples);
        Assert.Equal(2, summary.BatchesAssembled);
        Assert.Equal(4, summary.Updates);
        Assert.Equal(4 * 5, summary.SamplesConsumed);
        Assert.Equal(3, summary.Checkpoints);
        Assert.Equal(2, summary.Evaluations);
        Assert.Equal(4, summary.LastPolicyVersion);
        Assert.Equal(0.75, summary.FinalGoldReward);
        Assert.Equal(4, summary.GradientSteps);

        // the facts themselves replay, in order, with their types
        var stream = await session.Events.FetchStreamAsync(run.RunId);
        Assert.Equal(run.Events.Select(e => e.GetType()), stream.Select(e => e.Data.GetType()));
        var update = Assert.IsType<UpdateApplied>(stream.First(e => e.Data is UpdateApplied).Data);
        Assert.Equal(double.NaN, update.Metrics["train/nan"]);
        Assert.Equal(5, update.SampleIds.Count);
    }

    [Fact]
    public async Task Should_serve_the_same_store_through_dependency_injection()
    {
        var services = new ServiceCollection().AddPrefTuneEventStore(server.ConnectionString, _schema);
        await using var provider = services.BuildServiceProvider();
        var runId = Guid.NewGuid();
        await using (var session = provider.GetRequiredService<IDocumentSession>())
        {
            session.Events.StartStream(runId, RunEvents.Started(runId));
            await session.SaveChangesAsync();
        }

        await using var query = _store.QuerySession();
        Assert.Equal("running", (await query.LoadAsync<RunSummary>(runId))?.Status);
    }

    [Fact]
    public async Task Should_mark_a_failed_run_with_its_reason()
    {
        var runId = Guid.NewGuid();
        await AppendAsync(runId, [RunEvents.Started(runId)]);
        await AppendAsync(runId, [new RunFailed { RunId = runId, Reason = "timed out", Stage = "sampler", FailedAt = RunEvents.Start.AddSeconds(5) }]);

        await using var session = _store.QuerySession();
        var summary = await session.LoadAsync<RunSummary>(runId);
        Assert.NotNull(summary);
        Assert.Equal("failed", summary.Status);
        Assert.Equal("sampler: timed out", summary.FailureReason);
        Assert.Equal(RunEvents.Start.AddSeconds(5), summary.EndedAt);
    }

    [Fact]
    public async Task Should_store_the_pinned_names_and_enums_as_strings()
    {
        var run = RunEvents.Completed(Guid.NewGuid());
        await AppendAsync(run.RunId, run.Events);

        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var types = new NpgsqlCommand($"select distinct type from {_schema}.mt_events", connection);
        var stored = new List<string>();
        await using (var reader = await types.ExecuteReaderAsync())
            while (await reader.ReadAsync()) stored.Add(reader.GetString(0));
        var pinned = StoredNames.Select(row => (string)row[1]).ToHashSet();
        Assert.All(stored, name => Assert.Contains(name, pinned));

        await using var purpose = new NpgsqlCommand(
            $"select data->>'Purpose' from {_schema}.mt_events where type = 'rollouts_generated' limit 1", connection);
        Assert.Contains((string?)await purpose.ExecuteScalarAsync(), new[] { "Training", "Dataset", "Evaluation" });
    }

    [Fact]
    public async Task Should_append_at_a_useful_rate()
    {
        var runId = Guid.NewGuid();
        await AppendAsync(runId, [RunEvents.Started(runId)]); // creates the tables

        const int single = 100;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < single; i++)
            await AppendAsync(runId, [RunEvents.Update(runId, i + 1)]);
        var oneByOne = single / clock.Elapsed.TotalSeconds;

        const int batches = 20, perBatch = 100;
        clock.Restart();
        for (var b = 0; b < batches; b++)
            await AppendAsync(runId, Enumerable.Range(0, perBatch).Select(i => (object)RunEvents.Update(runId, single + b * perBatch + i + 1)).ToList());
        var batched = batches * perBatch / clock.Elapsed.TotalSeconds;
        output.WriteLine($"appends: {oneByOne:0} events/s one per transaction, {batched:0} events/s at {perBatch} per transaction");

        await using var session = _store.QuerySession();
        var summary = await session.LoadAsync<RunSummary>(runId);
        Assert.Equal(single + batches * perBatch, summary!.Updates);
    }

    private async Task AppendAsync(Guid runId, IReadOnlyList<object> events)
    {
        await using var session = _store.LightweightSession();
        if (events[0] is RunStarted) session.Events.StartStream(runId, events.ToArray());
        else session.Events.Append(runId, events.ToArray());
        await session.SaveChangesAsync();
    }
}

/// <summary>A small run's facts, in the order the Orchestrator records them.</summary>
internal static class RunEvents
{
    public static readonly DateTimeOffset Start = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    public static RunStarted Started(Guid runId) => new()
    {
        RunId = runId,
        StartedAt = Start,
        Spec = new RunSpec
        {
            Experiment = "exp.yaml",
            Label = "dpo (online)",
            Seed = 7,
            Task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() },
            Method = new MethodSpec { Name = "dpo", Parameters = new Dictionary<string, double> { ["beta"] = 0.1 } },
            Loop = new LoopSpec(),
        },
    };

    public static (Guid RunId, IReadOnlyList<object> Events) Completed(Guid runId)
    {
        var events = new List<object> { Started(runId) };
        events.Add(new PolicyInitialized { RunId = runId, Reference = Checkpoint(0), Policy = Checkpoint(0) });
        events.Add(new CheckpointPublished { RunId = runId, Checkpoint = Checkpoint(0) });
        events.Add(Generated(runId, RolloutPurpose.Dataset, 30));
        events.Add(Scored(runId, RolloutPurpose.Dataset, 30));
        events.Add(Evaluated(runId, 0, 0.25));
        var step = 0;
        for (var iteration = 0; iteration < 2; iteration++)
        {
            events.Add(Generated(runId, RolloutPurpose.Training, 10));
            events.Add(Scored(runId, RolloutPurpose.Training, 10));
            var batch = Guid.NewGuid();
            events.Add(new TrainingBatchAssembled
            {
                RunId = runId, BatchId = batch, Iteration = iteration, Source = DataSource.Online, PolicyVersion = step,
                SampleIds = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid()).ToList(),
            });
            events.Add(Update(runId, ++step));
            events.Add(Update(runId, ++step));
            events.Add(new PolicyTrained { RunId = runId, BatchId = batch, Steps = 2, Checkpoint = Checkpoint(step) });
            events.Add(new CheckpointPublished { RunId = runId, Checkpoint = Checkpoint(step) });
        }
        events.Add(Generated(runId, RolloutPurpose.Evaluation, 5));
        events.Add(Scored(runId, RolloutPurpose.Evaluation, 5));
        events.Add(Evaluated(runId, step, 0.75));
        events.Add(new RunCompleted { RunId = runId, GradientSteps = step, PolicyVersion = step, CompletedAt = Start.AddMinutes(1) });
        return (runId, events);
    }

    public static UpdateApplied Update(Guid runId, int step) => new()
    {
        RunId = runId, BatchId = Guid.NewGuid(), Step = step, Pass = 0, Minibatch = step - 1,
        VersionBefore = step - 1, VersionAfter = step, Loss = 0.69,
        SampleIds = Enumerable.Range(0, 5).Select(_ => Guid.NewGuid()).ToList(),
        Metrics = new Dictionary<string, double> { ["train/loss"] = 0.69, ["train/nan"] = double.NaN },
    };

    private static CheckpointRef Checkpoint(int version) =>
        new() { Version = version, Sha256 = new string('a', 64), Uri = $"pg://sha256/{new string('a', 64)}", Bytes = 10 };

    private static RolloutsGenerated Generated(Guid runId, RolloutPurpose purpose, int count) => new()
    {
        RunId = runId, BatchId = Guid.NewGuid(), Purpose = purpose, Iteration = 0, PolicyVersion = 0,
        Rollouts = Enumerable.Range(0, count).Select(i => new Rollout
        {
            SampleId = Guid.NewGuid(), PromptId = $"p{i % 3}", Group = i % 3, PromptTokens = [i % 3],
            ResponseTokens = [i], TokenLogProbs = [-1.5f], PolicyVersion = 0,
        }).ToList(),
    };

    private static RolloutsScored Scored(Guid runId, RolloutPurpose purpose, int count) => new()
    {
        RunId = runId, BatchId = Guid.NewGuid(), Purpose = purpose,
        Scores = Enumerable.Range(0, count).Select(_ => new RolloutScore { SampleId = Guid.NewGuid(), Reward = 0.5, GoldReward = 0.5 }).ToList(),
    };

    private static PolicyEvaluated Evaluated(Guid runId, int version, double gold) => new()
    {
        RunId = runId, PolicyVersion = version, Step = version, Samples = 5, MeanGoldReward = gold, GoldRewardStd = 0.1, Entropy = 1.2,
    };
}

using Marten;
using PrefTune.Messages;
using PrefTune.Orchestrator.Cli;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Integration.Studies;

/// <summary>
/// experiments/study-length.yaml's shape, made tiny: two tasks, each prepared (a preference dataset from the reference, a
/// reward model trained on it), an offline and an on-policy method on each, through the four services in one process.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_a_length_study_prepares_its_tasks(PostgresServer postgres) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-length-study-").FullName;

    private string Text => $$$"""
        kind: study
        name: tiny-length
        seeds: [3]
        task:
          kind: length
          length: {goal: min, prompts: {{{Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "prompts", "story-endings.jsonl")}}}}
          model: {path: {{{Fixtures.StoriesHf}}}, stop_ids: "1", max_new_tokens: 24}
        rewards:
          - {label: min, goal: min}
          - {label: mode, goal: mode}            # no mode_length: the prepared data's mode is used
        prepare:
          preference_data: {responses: 4, seed: 2}
          reward_model: {steps: 3, batch: 8, learning_rate: 0.001, eval_fraction: 0.2}
        optimizer: {max_grad_norm: 1.0}
        loop: {B: 8, C: 4, M: 8, gradient_steps: 2, learning_rate: 0.0001, eval_every: 2, eval_samples: 16, checkpoint_every: 1}
        methods:
          - {name: dpo, data: offline, loop: {C: 2}}
          - {name: dpo, data: online}
        """;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await postgres.DropSchemaAsync(_schema);
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task Each_task_gets_its_dataset_and_reward_model_recorded_and_named_by_its_runs_and_the_report_draws_the_lengths()
    {
        var study = StudyFile.Parse(Text, "tiny-length.yaml");
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = _schema, StageTimeoutSeconds = 120 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var root = Path.Combine(_folder, TaskPreparation.FolderName);

        var (prepared, facts) = await TaskPreparation.PrepareAsync(study, root, session.Journal, null, null, CancellationToken.None);
        var (studyId, ran) = await new StudyRunner(session).RunAsync(prepared, Text, "tiny-length.yaml", null, CancellationToken.None, prepared: facts);

        // Each task: its own dataset and reward model, on record, and named by every one of its runs.
        Assert.Equal(["min", "mode"], facts.Select(f => f.Reward));
        Assert.NotEqual(facts[0].Key, facts[1].Key);
        await using (var query = session.Store.QuerySession())
            foreach (var fact in facts)
            {
                Assert.IsType<PreferenceDatasetBuilt>(Assert.Single(await query.Events.FetchStreamAsync(fact.DatasetId)).Data);
                var trained = Assert.IsType<RewardModelTrained>(Assert.Single(await query.Events.FetchStreamAsync(fact.RewardModelId)).Data);
                Assert.Equal(fact.DatasetFile, trained.Dataset);
                Assert.True(File.Exists(fact.DatasetFile));
                Assert.True(File.Exists(Path.Combine(fact.RewardModel, "model.safetensors")));
            }
        Assert.NotNull(facts[1].ModeLength);   // computed from the mode task's samples
        Assert.All(ran, r =>
        {
            var fact = facts.Single(f => f.Reward == r.Cell.Reward);
            Assert.Equal("completed", r.Outcome.Status);
            Assert.Equal(fact.RewardModel, r.Outcome.Spec.RewardModel!.Path);
            Assert.Equal(fact.DatasetFile, r.Outcome.Spec.Task.Length!.Dataset);
            Assert.Equal(r.Cell.Reward == "mode" ? fact.ModeLength : null, r.Outcome.Spec.Task.Length.ModeLength);
            Assert.True(r.Outcome.Evaluations[^1].Metrics.ContainsKey("eval/proxy_reward"));
        });
        // An offline run trains on the prepared pairs: its samples are the file's rows, two to a prompt group.
        var offline = ran.First(r => r.Cell.Reward == "min" && r.Outcome.Spec.Method.Data == DataSource.Offline).Outcome;
        Assert.Equal(facts[0].Pairs, offline.Spec.Loop.DatasetPrompts);
        Assert.Equal(2, offline.Spec.Loop.DatasetResponses);

        // The study stream links the preparations; the report shows the figure and the reward models' accuracy.
        var record = (await StudyHistory.LoadAsync(session.Store, studyId, CancellationToken.None))!;
        Assert.Equal(facts.Select(f => f with { StudyId = studyId }), record.Prepared);
        var summary = new StudySummary(study.Name, studyId, record.Runs, record.Prepared);
        var files = StudyReport.Write(Path.Combine(_folder, "report"), summary);
        Assert.Contains(files, f => Path.GetFileName(f) == StudyReport.LengthsPng);
        Assert.All(summary.Cells, c => Assert.Equal(facts.Single(f => f.Reward == c.Reward).EvalAccuracy, c.RewardModelAccuracy));
        Assert.All(summary.Cells, c => Assert.NotNull(c.FinalMeanLength));
        Assert.Contains("RM accuracy", File.ReadAllText(Path.Combine(_folder, "report", StudyReport.TableMarkdown)));

        // Prepared again with the same inputs: found, not made again (no new dataset on record), the same paths.
        var (again, reused) = await TaskPreparation.PrepareAsync(study, root, session.Journal, null, null, CancellationToken.None);
        Assert.All(reused, f => Assert.True(f.Reused));
        Assert.Equal(facts.Select(f => (f.DatasetFile, f.RewardModel)), reused.Select(f => (f.DatasetFile, f.RewardModel)));
        Assert.Equal(prepared.Runs.Select(r => StudyRunner.SameRunKey(r.Spec)), again.Runs.Select(r => StudyRunner.SameRunKey(r.Spec)));
        await using (var query = session.Store.QuerySession())
            Assert.Equal(2, await query.Events.QueryRawEventDataOnly<PreferenceDatasetBuilt>().CountAsync());

        // The next study of this model is timed by these runs: twice the steps, about twice the time.
        var estimate = (await StudyPlan.EstimateAsync(session.Store, prepared, CancellationToken.None))!.Value;
        Assert.Equal(4, estimate.Runs);
        var longer = prepared with { Runs = prepared.Runs.Select(r => r with { Spec = r.Spec with { Loop = r.Spec.Loop with { GradientSteps = 4 } } }).ToList() };
        var twice = (await StudyPlan.EstimateAsync(session.Store, longer, CancellationToken.None))!.Value;
        // work per pair of runs, in samples of 24 tokens (sampled + evaluated + trained): online 16 + 32 + 16 -> 32 + 48 + 32,
        // offline (its D_pref read from the file) 0 + 32 + 16 -> 0 + 48 + 32: 112 -> 192
        Assert.Equal(192.0 / 112, twice.Estimate / estimate.Estimate, 6);

        // A counterfactual replay: another loss (IPO) on the on-policy DPO run's recorded samples, step for step.
        var online = ran.First(r => r.Cell.Reward == "min" && r.Outcome.Spec.Method.Data == DataSource.Online).Outcome;
        var recorded = (await RecordedRun.LoadAsync(session.Store, online.RunId, CancellationToken.None))!;
        var replay = await session.ReplayAsync(ReplayCommand.Counterfactual(recorded.Started.Spec, "ipo", []), recorded, null, CancellationToken.None);
        Assert.Equal("completed", replay.Status);
        Assert.Equal(online.Updates.Select(u => u.SampleIds), replay.Updates.Select(u => u.SampleIds));
        var replayed = (await RecordedRun.LoadAsync(session.Store, replay.RunId, CancellationToken.None))!;
        Assert.NotEqual(recorded.Checkpoints[^1].Sha256, replayed.Checkpoints[^1].Sha256);
    }

    [Fact]
    public async Task A_preparation_stopped_while_training_its_reward_model_resumes_from_its_recorded_dataset()
    {
        var study = StudyFile.Parse(Text, "tiny-length.yaml");
        var reward = study.Rewards[0];
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = _schema, StageTimeoutSeconds = 120 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var root = Path.Combine(_folder, "stopped");
        using var stop = new CancellationTokenSource();
        var lines = new List<string>();
        void Log(string line) { lines.Add(line); if (line.Contains("training the reward model")) stop.Cancel(); }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            TaskPreparation.PrepareAsync(reward.Label, reward.Task, study.Preparation!, 1, root, session.Journal, null, Log, stop.Token));
        var key = TaskPreparation.KeyOf(reward.Task, study.Preparation!, 1);
        Assert.False(File.Exists(Path.Combine(root, key, TaskPreparation.Marker)));   // not whole: never read as a preparation

        var prepared = await TaskPreparation.PrepareAsync(reward.Label, reward.Task, study.Preparation!, 1, root, session.Journal, null, lines.Add, CancellationToken.None);
        Assert.Contains(lines, l => l.Contains("made by an earlier attempt"));
        Assert.Single(Directory.GetDirectories(Path.Combine(root, key), "data-*"));   // sampled once
        await using var query = session.Store.QuerySession();
        var datasets = await query.Events.QueryRawEventDataOnly<PreferenceDatasetBuilt>().ToListAsync();
        Assert.Single(datasets, d => d.DatasetId == prepared.DatasetId);
        Assert.True(File.Exists(Path.Combine(prepared.RewardModel, "model.safetensors")));
    }
}

using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Runs;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using UnitRewards = PrefTune.Tests.Unit.Rewards;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Preference;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>
/// The preference task through the services: stories260K on the shipped UltraFeedback-format file (3 distinct prompts, 1
/// held out), a random 512-id classifier as the gold reward model and another as the proxy. Offline DPO trains on the
/// file's rows but the held-out prompt's; on-policy DPO samples the training prompts and trains on the proxy; both are
/// measured by the gold model, with the win rate against the reference's responses to the held-out prompt.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_a_run_trains_on_a_users_preference_data(PostgresServer postgres) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-preference-run-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly string Dataset = Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "data", "stories-ultrafeedback.jsonl");

    /// <summary>The task, its gold model and the proxy, for an experiment and a study alike (top-level YAML).</summary>
    private static string TaskAndRewardModels => $"""
        task:
          kind: preference
          preference:
            dataset: {Dataset}
            gold_reward_model:
              path: {UnitRewards.RewardModels.Random512.Value}
          model:
            path: {Fixtures.StoriesHf}
            stop_ids: "1"
            max_new_tokens: 128
        reward_model:
          path: {UnitRewards.RewardModels.Random512Other.Value}
        """;

    private Experiment Load(string method, string data, string c) => ExperimentFile.Parse($$"""
        name: preference-tiny
        seeds: [1]
        {{TaskAndRewardModels}}
        loop:
          B: 4
          C: {{c}}
          M: 4
          gradient_steps: 2
          learning_rate: 0.001
          eval_every: 2
          eval_samples: 6
          checkpoint_every: 1
        methods:
          - name: {{method}}
            data: {{data}}
        """, Path.Combine(_folder, "experiment.yaml"));

    private static IReadOnlyList<double> Gold(IReadOnlyList<Rollout> rollouts, TaskSpec task)
    {
        using var gold = RewardModelScorer.Load(new RewardModelSpec { Path = UnitRewards.RewardModels.Random512.Value });
        return gold.Score(rollouts, RewardRegistry.PolicyTokenizerFile(task));
    }

    [Fact]
    public async Task Offline_dpo_trains_on_the_files_rows_but_the_held_out_prompts_and_reports_the_win_rate()
    {
        var experiment = Load("dpo", "offline", "2");
        var spec = Assert.Single(experiment.Runs);
        var task = new PreferenceTask(spec.Task);
        var heldOut = Assert.Single(task.EvaluationPrompts(spec.Seed)).Tokens;
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        var dataset = Assert.Single(recorded.Events.OfType<RolloutsGenerated>(), g => g.Purpose == RolloutPurpose.Dataset);
        Assert.Equal(2 * spec.Loop.DatasetPrompts, dataset.Rollouts.Count);
        Assert.True(dataset.Rollouts.Count is > 0 and < 24);   // the file's 12 pairs, less the held-out prompt's
        Assert.DoesNotContain(dataset.Rollouts, r => r.PromptTokens.SequenceEqual(heldOut));
        // the file's scores are what offline DPO ranks by; the gold reward is the gold model's, measured by the Scorer
        var scored = Assert.Single(recorded.Events.OfType<RolloutsScored>(), s => s.Purpose == RolloutPurpose.Dataset);
        Assert.Equal(Gold(dataset.Rollouts, spec.Task), scored.Scores.Select(s => s.GoldReward), (a, b) => Math.Abs(a - b) < 1e-5);
        Assert.All(scored.Scores.Chunk(2), pair => Assert.True(pair[0].Reward > pair[1].Reward));   // y_w's score above y_l's

        // evaluation 0 is the reference against itself, the same seed: exactly even
        var first = recorded.Evaluations[0];
        Assert.Equal(0.5, first.Metrics[ComparisonMetrics.WinRate]);
        Assert.Equal(0.0, first.Metrics[ComparisonMetrics.GoldRewardIncrease]);
        Assert.Equal(first.MeanGoldReward, first.Metrics[ComparisonMetrics.ReferenceGoldReward], 12);
        var last = recorded.Evaluations[^1];
        Assert.InRange(last.Metrics[ComparisonMetrics.WinRate], 0, 1);
        Assert.Equal(last.MeanGoldReward - first.MeanGoldReward, last.Metrics[ComparisonMetrics.GoldRewardIncrease], 9);

        var summary = new SummaryReport(experiment, [outcome]);
        var method = Assert.Single(summary.Methods);
        Assert.Equal(last.Metrics[ComparisonMetrics.WinRate], method.FinalWinRate);
        Assert.Equal(last.Metrics[ComparisonMetrics.GoldRewardIncrease], method.FinalGoldRewardIncrease);
        Assert.Contains("\"final_win_rate\"", summary.ToJson());

        var replay = await session.ReplayExactlyAsync(recorded, CancellationToken.None);
        Assert.All(replay.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));
    }

    [Fact]
    public async Task On_policy_dpo_samples_the_training_prompts_trains_on_the_proxy_and_is_measured_by_the_gold_model()
    {
        var spec = Assert.Single(Load("dpo", "online", "4").Runs);
        var task = new PreferenceTask(spec.Task);
        var heldOut = Assert.Single(task.EvaluationPrompts(spec.Seed)).Tokens;
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        var training = recorded.Events.OfType<RolloutsGenerated>().Where(g => g.Purpose == RolloutPurpose.Training).SelectMany(g => g.Rollouts).ToList();
        Assert.Equal(spec.Loop.B * 2, training.Count);
        Assert.DoesNotContain(training, r => r.PromptTokens.SequenceEqual(heldOut));
        var scores = recorded.Events.OfType<RolloutsScored>().Where(s => s.Purpose == RolloutPurpose.Training).SelectMany(s => s.Scores).ToDictionary(s => s.SampleId);
        var gold = Gold(training, spec.Task);
        using (var proxy = RewardModelScorer.Load(new RewardModelSpec { Path = UnitRewards.RewardModels.Random512Other.Value }))
            Assert.Equal(proxy.Score(training, RewardRegistry.PolicyTokenizerFile(spec.Task)), training.Select(r => scores[r.SampleId].Reward), (a, b) => Math.Abs(a - b) < 1e-5);
        Assert.Equal(gold, training.Select(r => scores[r.SampleId].GoldReward), (a, b) => Math.Abs(a - b) < 1e-5);
        Assert.NotEqual(gold, training.Select(r => scores[r.SampleId].Reward));   // two models: the run trains on the proxy
        Assert.All(recorded.Evaluations, e => Assert.True(e.Metrics.ContainsKey(ComparisonMetrics.WinRate)));
        Assert.Equal(0.5, recorded.Evaluations[0].Metrics[ComparisonMetrics.WinRate]);
    }

    [Fact]
    public async Task The_batch_size_sweep_runs_as_a_study_and_its_report_shows_the_win_rates()
    {
        var text = $$"""
            kind: study
            name: preference-sweep
            seeds: [1]
            {{TaskAndRewardModels}}
            rewards:
              - {label: stories}
            loop: {B: 4, C: 4, M: 4, gradient_steps: 2, learning_rate: 0.001, eval_every: 2, eval_samples: 4, checkpoint_every: 2}
            methods:
              - name: dpo
                data: offline
                loop: {C: 2}
            sweeps:
              - {label: dpo-B, method: dpo, data: online, field: B, values: [4, 8]}
            """;
        var study = Orchestrator.Studies.StudyFile.Parse(text, Path.Combine(_folder, "study.yaml"));
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var (studyId, ran) = await new Orchestrator.Studies.StudyRunner(session).RunAsync(study, text, "study.yaml", null, CancellationToken.None);

        Assert.Equal(3, ran.Count);
        Assert.All(ran, r => Assert.Equal("completed", r.Outcome.Status));
        Assert.Equal([4, 8], ran.Where(r => r.Cell.SweepField is not null).Select(r => r.Outcome.Spec.Loop.B));
        // B = 8 at M = 4: two gradient steps per iteration, on one batch of 8 samples; B = 4 samples twice
        Assert.Equal([8, 8], ran.Where(r => r.Cell.SweepField is not null).Select(r => r.Outcome.SamplesDrawn));
        // the report is written from the study's stream, as `preftune study` writes it
        var record = (await Orchestrator.Studies.StudyHistory.LoadAsync(session.Store, studyId, CancellationToken.None))!;
        var summary = new StudySummary(study.Name, studyId, record.Runs, record.Prepared);
        Assert.All(summary.Cells, c => Assert.InRange(c.FinalWinRate!.Value, 0, 1));
        var files = StudyReport.Write(Path.Combine(_folder, "report"), summary);
        Assert.Contains(files, f => Path.GetFileName(f) == StudyReport.SweepPng("dpo-B", "stories"));
        Assert.Contains("win rate vs reference", File.ReadAllText(Path.Combine(_folder, "report", StudyReport.TableMarkdown)));
    }
}

using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Preference;
using Rm = PrefTune.Tests.Unit.Rewards.RewardModels;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Preference;

/// <summary>The experiment file's checks of a preference task: each mistake named at its key, before anything starts.</summary>
public class When_a_preference_experiment_is_read
{
    private static string Shipped(string format) => Path.Combine(RepositoryRoot(), "experiments", "data", $"stories-{format}.jsonl");

    private static string File(string dataset = "trl-standard", string preference = "", string gold = "", string methods = "  - {name: dpo, data: offline, loop: {C: 2}}\n  - {name: dpo, data: online}")
    {
        var goldBlock = gold == "" ? $"    gold_reward_model:\n      path: {Rm.Random512.Value}\n" : gold;
        return $"""
            name: pref
            task:
              kind: preference
              preference:
                dataset: {Shipped(dataset)}
            {preference}{goldBlock}  model:
                path: {Fixtures.StoriesHf}
                stop_ids: "1"
                max_new_tokens: 128
            loop:
              B: 4
              C: 4
              M: 4
            methods:
            {methods}
            """;
    }

    [Fact]
    public void A_sound_file_gives_offline_runs_the_pairs_of_the_training_prompts()
    {
        var experiment = Parse(File());

        var offline = experiment.Runs[0];
        Assert.Equal("preference", offline.Task.Kind);
        Assert.Equal(2, offline.Loop.DatasetResponses);
        // 12 pairs on 3 prompts: the held-out prompt's rows are not D_pref
        Assert.InRange(offline.Loop.DatasetPrompts, 1, 11);
        Assert.Equal(Rm.Random512.Value, offline.Task.Preference!.GoldRewardModel!.Path);
        Assert.Equal(4, experiment.Runs[1].Loop.C);
    }

    [Fact]
    public void A_held_out_share_outside_0_to_1_is_named() =>
        ProblemAt(File(preference: "    held_out: 1.5\n"), "task.preference.held_out", "outside (0, 1)");

    [Fact]
    public void A_missing_gold_reward_model_is_named() =>
        ProblemAt(File(gold: "    held_out: 0.25\n"), "task.preference.gold_reward_model", "missing");

    [Fact]
    public void A_gold_reward_model_that_is_a_causal_lm_is_named_at_its_path() =>
        ProblemAt(File(gold: $"    gold_reward_model:\n      path: {Fixtures.StoriesHf}\n"), "task.preference.gold_reward_model.path", "not a sequence classifier");

    [Fact]
    public void A_missing_dataset_file_is_named() =>
        ProblemAt(File(dataset: "no-such-format"), "task.preference.dataset", "no such file");

    [Fact]
    public void Offline_methods_on_prompts_only_are_refused_and_on_policy_ones_run()
    {
        ProblemAt(File(dataset: "prompt-only"), "methods[0].data", "holds prompts only");
        var online = Parse(File(dataset: "prompt-only", methods: "  - {name: reinforce, data: online}"));
        Assert.Equal(2, new PreferenceTask(Assert.Single(online.Runs).Task).PromptPool(1).Count);
    }
}

/// <summary>The shipped recipe files, with their reward models (made by train-rm before a first run, so absent in a clone)
/// swapped for a random classifier: everything else, paths relative to experiments/ included, as shipped.</summary>
public class Loading_the_shipped_preference_recipes
{
    private static string Shipped(string file, out string path)
    {
        path = Path.Combine(RepositoryRoot(), "experiments", file);
        return System.IO.File.ReadAllText(path)
            .Replace("../out/stories-gold-rm", Rm.Random512.Value)
            .Replace("../out/stories-proxy-rm", Rm.Random512Other.Value);
    }

    [Fact]
    public void The_experiment_runs_offline_dpo_ipo_pref_ft_and_on_policy_dpo_rwr_reinforce_on_the_shipped_data()
    {
        var experiment = Orchestrator.Experiments.ExperimentFile.Parse(Shipped("pref-stories.yaml", out var path), path);

        Assert.Equal(["dpo (offline)", "ipo (offline)", "pref-ft (offline)", "dpo (online)", "rwr (online)", "reinforce (online)"],
            experiment.Runs.Select(r => r.Label));
        Assert.All(experiment.Runs, r => Assert.Equal(Path.Combine(RepositoryRoot(), "experiments", "data", "stories-ultrafeedback.jsonl"), r.Task.Preference!.Dataset));
        Assert.All(experiment.Runs, r => Assert.Equal(Rm.Random512Other.Value, r.RewardModel!.Path));
        Assert.All(experiment.Runs.Where(r => r.Method.Data == Messages.DataSource.Offline), r => Assert.Equal(2, r.Loop.C));
    }

    [Fact]
    public void The_study_sweeps_b_at_fixed_m_for_on_policy_dpo_and_reinforce()
    {
        var study = Orchestrator.Studies.StudyFile.Parse(Shipped("study-pref-batch-size.yaml", out var path), path);

        var cells = study.Runs.Select(r => ($"{r.Spec.Method.Name} ({r.Spec.Method.Data})", r.Spec.Loop.B, r.Spec.Loop.M)).ToList();
        Assert.Equal([("dpo (Offline)", 16, 16), ("dpo (Online)", 16, 16), ("dpo (Online)", 32, 16), ("dpo (Online)", 64, 16),
            ("reinforce (Online)", 16, 16), ("reinforce (Online)", 32, 16), ("reinforce (Online)", 64, 16)], cells);
        Assert.All(study.Runs, r => Assert.Equal("preference", r.Spec.Task.Kind));
    }
}

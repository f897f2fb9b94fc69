using PrefTune.Messages;
using PrefTune.Orchestrator.Studies;
using PrefTune.Tests.Unit.Experiments;
using Xunit;
using static PrefTune.Tests.Unit.Studies.StudyText;

namespace PrefTune.Tests.Unit.Studies;

public class Loading_a_study_file
{
    [Fact]
    public void Expands_rewards_by_methods_by_seeds_then_the_sweeps_by_reward_value_and_seed()
    {
        var study = Parse(Minimal);

        Assert.Equal(2 * 2 * 2 + 2 * 2 * 2, study.Runs.Count);
        Assert.Equal(
        [
            "peak70 dpo (offline) 1", "peak70 dpo (offline) 2", "peak70 reinforce (online) 1", "peak70 reinforce (online) 2",
            "peak20 dpo (offline) 1", "peak20 dpo (offline) 2", "peak20 reinforce (online) 1", "peak20 reinforce (online) 2",
            "peak70 rwr online B=10 1", "peak70 rwr online B=10 2", "peak70 rwr online B=40 1", "peak70 rwr online B=40 2",
            "peak20 rwr online B=10 1", "peak20 rwr online B=10 2", "peak20 rwr online B=40 1", "peak20 rwr online B=40 2",
        ], study.Runs.Select(r => $"{r.Cell.Reward} {r.Spec.Label} {r.Spec.Seed}"));
        Assert.All(study.Runs, r => Assert.Equal("tiny-study", r.Spec.Experiment));
        Assert.Equal(["dpo (offline)", "reinforce (online)"], study.Methods);
    }

    [Fact]
    public void Gives_each_reward_its_overrides_and_keeps_the_rest_of_the_task()
    {
        var study = Parse(Minimal);

        Assert.All(study.Runs, r => Assert.Equal(r.Cell.Reward == "peak70" ? 70 : 20, r.Spec.Task.Bandit!.RewardCenter));
        Assert.All(study.Runs, r => Assert.Equal(10, r.Spec.Task.Bandit!.RewardWidth));
        Assert.Equal(["peak70", "peak20"], study.Rewards.Select(r => r.Label));
    }

    [Fact]
    public void Sets_only_the_swept_field_of_the_loop()
    {
        var study = Parse(Minimal);
        var sweep = study.Runs.Where(r => r.Cell.SweepField is not null).ToList();

        Assert.All(sweep, r => Assert.Equal(r.Cell.SweepValue, r.Spec.Loop.B));
        Assert.All(sweep, r => Assert.Equal(10, r.Spec.Loop.M));
        Assert.All(sweep, r => Assert.Equal(40, r.Spec.Loop.GradientSteps));
        Assert.All(sweep, r => Assert.Equal(("rwr", DataSource.Online), (r.Spec.Method.Name, r.Spec.Method.Data)));
        Assert.All(sweep, r => Assert.Equal("rwr-B", r.Cell.Label));
        var cell = sweep.Last().Cell;
        Assert.Equal(new StudyCell { Reward = "peak20", Label = "rwr-B", SweepField = "B", SweepValue = 40, Seed = 2 }, cell);
    }

    [Fact]
    public void Carries_a_sweeps_parameters_and_a_learning_rate_sweeps_numbers()
    {
        var text = Minimal.Replace("""
              - label: rwr-B
                method: rwr
                field: B
                values: [10, 40]
            """, """
              - label: dpo-lr
                method: dpo
                parameters: {threshold: 0.1}
                field: learning_rate
                values: [0.001, 0.01]
            """);

        var sweep = Parse(text).Runs.Where(r => r.Cell.SweepField is not null).ToList();

        Assert.Equal([0.001, 0.001, 0.01, 0.01, 0.001, 0.001, 0.01, 0.01], sweep.Select(r => r.Spec.Loop.LearningRate));
        Assert.All(sweep, r => Assert.Equal(0.1, r.Spec.Method.Parameters["threshold"]));
        Assert.Equal("dpo online learning_rate=0.001", sweep[0].Spec.Label);
    }

    [Fact]
    public void Names_a_sweep_after_its_method_and_field_when_it_has_no_label()
    {
        var study = Parse(Minimal.Replace("  - label: rwr-B\n    method: rwr", "  - method: rwr"));

        Assert.Equal("rwr-B", Assert.Single(study.Sweeps).Label);
    }

    [Fact]
    public void Runs_without_sweeps()
    {
        var study = Parse(Minimal[..Minimal.IndexOf("sweeps:", StringComparison.Ordinal)]);

        Assert.Empty(study.Sweeps);
        Assert.Equal(8, study.Runs.Count);
    }

    [Fact]
    public void Gives_the_same_key_to_a_sweep_value_that_repeats_a_main_grid_run()
    {
        var study = Parse(Minimal.Replace("method: rwr", "method: reinforce"));
        var main = study.Runs.First(r => r.Cell is { Reward: "peak70", Label: "reinforce (online)", Seed: 1 });
        var b10 = study.Runs.First(r => r.Cell is { Reward: "peak70", SweepValue: 10, Seed: 1 });
        var b40 = study.Runs.First(r => r.Cell is { Reward: "peak70", SweepValue: 40, Seed: 1 });
        var otherSeed = study.Runs.First(r => r.Cell is { Reward: "peak70", Label: "reinforce (online)", Seed: 2 });

        Assert.NotEqual(main.Spec.Label, b10.Spec.Label);
        Assert.Equal(StudyRunner.SameRunKey(main.Spec), StudyRunner.SameRunKey(b10.Spec));
        Assert.NotEqual(StudyRunner.SameRunKey(main.Spec), StudyRunner.SameRunKey(b40.Spec));
        Assert.NotEqual(StudyRunner.SameRunKey(main.Spec), StudyRunner.SameRunKey(otherSeed.Spec));
    }
}

public class Loading_the_shipped_study
{
    [Fact]
    public void Expands_every_method_reward_seed_and_sweep()
    {
        var study = StudyFile.Load(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "study-bandit.yaml"));

        Assert.Equal(["peak70", "peak20"], study.Rewards.Select(r => r.Label));
        Assert.Equal([1, 2, 3], study.Seeds);
        Assert.Equal(11, study.Methods.Count);
        Assert.Equal(["rwr-B", "reinforce-B", "reinforce-T", "dpo-T"], study.Sweeps.Select(s => s.Label));
        Assert.Equal(11 * 2 * 3 + 4 * 4 * 2 * 3, study.Runs.Count);
        // B = 10 and T = 1 repeat main-grid runs, which the runner links instead of re-running.
        Assert.Equal(11 * 2 * 3 + 3 * 4 * 2 * 3, study.Runs.Select(r => StudyRunner.SameRunKey(r.Spec)).Distinct().Count());
    }
}

using PrefTune.Messages;
using PrefTune.Sampler;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Datasets;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Length;
using PrefTune.Training.Tasks.Preference;
using Xunit;

namespace PrefTune.Tests.Unit.Preference;

/// <summary>The preference task's split of a dataset's prompts into training and held-out ones, on the shipped files.</summary>
public class When_a_preference_task_holds_prompts_out
{
    private static string Shipped(string format) => Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "data", $"stories-{format}.jsonl");

    private static TaskSpec Spec(string format, double heldOut = 0.25) => new()
    {
        Kind = "preference",
        Preference = new PreferenceSpec { Dataset = Shipped(format), HeldOut = heldOut, GoldRewardModel = new RewardModelSpec { Path = "gold" } },
        Model = new LanguageModelSpec { Path = Fixtures.StoriesHf, MaxNewTokens = 128, StopIds = "1" },
    };

    [Fact]
    public void The_split_depends_on_the_prompts_alone_and_keeps_both_sides_non_empty()
    {
        var prompts = Enumerable.Range(0, 20).Select(i => $"prompt {i}").ToList();
        var held = PreferenceTask.Split(prompts, 0.25, "f");
        var reversed = PreferenceTask.Split(prompts.AsEnumerable().Reverse().ToList(), 0.25, "f");

        Assert.Equal(5, held.Count);                                          // round(0.25 x 20)
        Assert.Equal(held.Order(), reversed.Order());                         // not the file's order
        Assert.Single(PreferenceTask.Split(prompts, 0.01, "f"));              // at least one held out
        Assert.Equal(19, PreferenceTask.Split(prompts, 0.99, "f").Count);     // at least one trained on
        var e = Assert.Throws<ArgumentException>(() => PreferenceTask.Split(["only"], 0.5, "data.jsonl"));
        Assert.Contains("task.preference.dataset: data.jsonl holds 1 distinct prompt", e.Message);
    }

    [Theory]
    [InlineData("trl-standard")]
    [InlineData("ultrafeedback")]
    [InlineData("prompt-only")]
    [InlineData("relabeled")]
    public void Every_format_gives_the_same_training_and_held_out_prompts(string format)
    {
        var task = new PreferenceTask(Spec(format));
        var reference = new PreferenceTask(Spec("trl-standard"));

        // 3 distinct prompts in the shipped files: 1 held out, 2 trained on, the same token ids whatever the format
        Assert.Equal(2, task.PromptPool(1).Count);
        var held = Assert.Single(task.EvaluationPrompts(1));
        Assert.Equal("h0", held.PromptId);
        Assert.Equal(["p0", "p1"], task.PromptPool(1).Select(p => p.PromptId));
        Assert.DoesNotContain(task.PromptPool(1), p => p.Tokens.SequenceEqual(held.Tokens));
        Assert.Equal(reference.EvaluationPrompts(1)[0].Tokens, held.Tokens);
        Assert.Equal(task.PromptPool(1), task.PromptPool(2));   // seeds do not move the split
        Assert.True(task.ComparesWithReference);
        Assert.Equal("gold", task.GoldRewardModel.Path);
        Assert.Throws<InvalidOperationException>(() => task.GoldReward(new Rollout
        {
            SampleId = Guid.NewGuid(), PromptId = "p0", Group = 0, PromptTokens = [1], ResponseTokens = [2], TokenLogProbs = [0], PolicyVersion = 0,
        }));
    }

    [Fact]
    public async Task Offline_d_pref_leaves_out_the_held_out_prompts_rows()
    {
        var spec = Spec("trl-standard");
        var task = new PreferenceTask(spec);
        var all = await PreferenceRollouts.ReadAsync(spec.Preference!.Dataset, spec.Model!, Guid.NewGuid());
        var kept = await PreferenceRollouts.ReadAsync(spec.Preference.Dataset, spec.Model!, Guid.NewGuid(), p => !task.IsHeldOut(p));
        var held = task.EvaluationPrompts(1)[0].Tokens;

        Assert.Equal(24, all.Count);                                           // 12 pairs
        Assert.Contains(all, s => s.Rollout.PromptTokens.SequenceEqual(held));
        Assert.DoesNotContain(kept, s => s.Rollout.PromptTokens.SequenceEqual(held));
        Assert.Equal(all.Count(s => !s.Rollout.PromptTokens.SequenceEqual(held)), kept.Count);
        Assert.Equal(PreferenceTasks.PairsFile(spec), spec.Preference.Dataset);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.5)]
    public void A_held_out_share_outside_0_to_1_is_refused_naming_the_field(double share)
    {
        var e = Assert.Throws<ArgumentException>(() => new PreferenceTask(Spec("trl-standard", share)));
        Assert.StartsWith("task.preference.held_out:", e.Message);
    }
}

/// <summary>The win rate against the reference and the gold reward increase, on gold rewards worked out by hand.</summary>
public class When_a_policy_is_compared_with_the_reference
{
    [Fact]
    public void Wins_count_one_ties_half_and_only_responses_to_the_same_prompt_are_compared()
    {
        // prompt a: policy 2 and 3 against reference 2 and 1; prompt b: policy 0 against reference 1
        var metrics = new Dictionary<string, double>().WithComparison(
            [("a", 2), ("a", 3), ("b", 0)],
            [("a", 2), ("a", 1), ("b", 1)]);

        // 5 pairs on the same prompt: 2 ties 2 (1/2), 2 beats 1, 3 beats 2 and 1, 0 loses to 1: 3.5 / 5
        Assert.Equal(0.7, metrics[ComparisonMetrics.WinRate], 12);
        Assert.Equal(5.0 / 3 - 4.0 / 3, metrics[ComparisonMetrics.GoldRewardIncrease], 12);
        Assert.Equal(4.0 / 3, metrics[ComparisonMetrics.ReferenceGoldReward], 12);
    }

    [Fact]
    public void The_reference_against_itself_wins_exactly_half()
    {
        (string, double)[] same = [("a", 1), ("a", 5), ("b", -2), ("b", 7)];
        var metrics = new Dictionary<string, double>().WithComparison(same, same);

        Assert.Equal(0.5, metrics[ComparisonMetrics.WinRate]);
        Assert.Equal(0.0, metrics[ComparisonMetrics.GoldRewardIncrease]);
    }

    [Fact]
    public void A_prompt_the_reference_did_not_answer_is_an_error_naming_it()
    {
        var e = Assert.Throws<ArgumentException>(() => new Dictionary<string, double>().WithComparison([("h3", 1)], [("h0", 1)]));
        Assert.Contains("h3", e.Message);
    }
}

/// <summary>train-rm reads a user's pairs in any format: the shipped files hold the same 12 pairs in each (Anthropic HH's
/// dialogue markers make other text, so it is left out here).</summary>
public class When_a_reward_model_is_planned_on_any_pair_format
{
    [Theory]
    [InlineData("trl-standard")]
    [InlineData("trl-conversational")]
    [InlineData("ultrafeedback")]
    public async Task It_trains_on_the_same_token_pairs_as_the_relabeled_file(string format)
    {
        string Shipped(string name) => Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "data", $"stories-{name}.jsonl");
        var settings = new PrefTune.Training.Rewards.RewardTrainingSettings();
        var output = Path.Combine(Path.GetTempPath(), $"preftune-rm-plan-{Guid.NewGuid():N}");
        var relabeled = await PrefTune.Orchestrator.Preparation.RewardModelJob.PlanAsync(new(Shipped("relabeled"), Fixtures.StoriesHf), settings, output);
        var other = await PrefTune.Orchestrator.Preparation.RewardModelJob.PlanAsync(new(Shipped(format), Fixtures.StoriesHf), settings, output);

        Assert.Equal(12, other.Pairs.Count);
        Assert.Equal(relabeled.Pairs.Select(p => (p.Chosen, p.Rejected)), other.Pairs.Select(p => (p.Chosen, p.Rejected)),
            (a, b) => a.Chosen.SequenceEqual(b.Chosen) && a.Rejected.SequenceEqual(b.Rejected));
        Assert.False(Directory.Exists(output));   // a plan writes nothing
    }
}

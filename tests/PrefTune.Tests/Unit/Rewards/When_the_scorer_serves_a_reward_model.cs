using PrefTune.Messages;
using PrefTune.Scorer;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;
using static PrefTune.Tests.Unit.Rewards.RewardModels;

namespace PrefTune.Tests.Unit.Rewards;

/// <summary>The Scorer's answer to ScoreRollouts with a reward_model: the model's score to train on, the gold reward
/// beside it unchanged, one query per rollout.</summary>
public sealed class When_the_scorer_serves_a_reward_model : IDisposable
{
    private readonly RewardFunctions _rewards = new();

    public void Dispose() => _rewards.Dispose();

    /// <summary>A length task answered by stories260K (its tokenizer.json is the policy's): the gold reward is -length.</summary>
    private static readonly TaskSpec LengthTask = new()
    {
        Kind = "length",
        Length = new LengthSpec(),
        Model = new LanguageModelSpec { Path = Fixtures.StoriesHf },
    };

    private static ScoreRollouts Request(IReadOnlyList<Rollout> rollouts, RewardModelSpec? model, TaskSpec? task = null) => new()
    {
        RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Purpose = RolloutPurpose.Training, Task = task ?? LengthTask,
        Rollouts = rollouts, RewardModel = model,
    };

    // stories ids below 96, so the tokenizer-less reward model reads them as they are
    private static readonly IReadOnlyList<Rollout> Rollouts =
    [
        Rollout([1, 40, 41], [50, 51, 52, 2], FinishReason.Stop),
        Rollout([1, 40], [60, 61, 62, 63, 64], FinishReason.Length),
        Rollout([1, 70, 71, 72], [2], FinishReason.Stop),
    ];

    [Fact]
    public async Task The_reward_is_the_models_score_and_the_gold_reward_is_unchanged_beside_it()
    {
        using var model = Fixtures.Load(TinyRm);

        var scored = await ScoreRolloutsConsumer.ScoreAsync(_rewards, Request(Rollouts, new RewardModelSpec { Path = TinyRm }), default);
        var gold = await ScoreRolloutsConsumer.ScoreAsync(_rewards, Request(Rollouts, null), default);

        Assert.Equal(Rollouts.Select(r => r.SampleId), scored.Scores.Select(s => s.SampleId));
        var content = Rollouts.Select(r => (int[])[.. r.PromptTokens, .. r.ResponseTokens.Take(r.ContentLength())]);
        Assert.Equal(content.Select(ids => RewardModels.Direct(model, ids)), scored.Scores.Select(s => s.Reward), (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.Equal([-3.0, -5.0, 0.0], scored.Scores.Select(s => s.GoldReward));   // -length, the stop token not counted
        Assert.Equal(gold.Scores.Select(s => s.GoldReward), scored.Scores.Select(s => s.GoldReward));
        Assert.Equal(gold.Scores.Select(s => s.GoldReward), gold.Scores.Select(s => s.Reward));   // no reward model: trained on gold
        Assert.Equal(Rollouts.Count, scored.RewardQueries);
    }

    [Fact]
    public async Task A_bandit_task_keeps_its_gold_reward_next_to_the_models()
    {
        var bandit = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec { Actions = 10, RewardCenter = 7, Prompts = 2, ContextSize = 4, Hidden = 8 } };
        IReadOnlyList<Rollout> rollouts = [Rollout([0], [7], finish: null), Rollout([1], [2], finish: null)];

        var scored = await _rewards.ScoreAsync(Request(rollouts, new RewardModelSpec { Path = TinyRm }, bandit));

        Assert.Equal([1.0, Math.Exp(-0.25)], scored.Select(s => s.GoldReward), (a, b) => Math.Abs(a - b) < 1e-12);
        Assert.NotEqual(scored.Select(s => s.GoldReward), scored.Select(s => s.Reward));
    }

    [Fact]
    public async Task It_keeps_at_most_three_reward_models_loaded_and_reloads_an_evicted_one()
    {
        var specs = new[] { new RewardModelSpec { Path = TinyRm } }
            .Concat(Enumerable.Range(0, 3).Select(i => new RewardModelSpec { Path = TinyRm, Tokenizer = WordTokenizer($"cache-{i}", ["a", "b"]) }))
            .ToList();
        var first = await _rewards.ScoreAsync(Request(Rollouts, specs[0]));

        foreach (var spec in specs.Skip(1)) await _rewards.ScoreAsync(Request(Rollouts, spec));
        var again = await _rewards.ScoreAsync(Request(Rollouts, specs[0]));

        Assert.Equal(3, _rewards.LoadedRewardModels);
        Assert.Equal(first.Select(s => s.Reward), again.Select(s => s.Reward));
    }

    [Fact]
    public async Task A_causal_lm_named_as_reward_model_fails_naming_the_field()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => _rewards.ScoreAsync(Request(Rollouts, new RewardModelSpec { Path = Fixtures.Tiny("tiny-gpt-neox") })));

        Assert.StartsWith("reward_model.path: ", error.Message);
        Assert.Equal(0, _rewards.LoadedRewardModels);
    }
}

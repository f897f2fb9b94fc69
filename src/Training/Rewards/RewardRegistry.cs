using PrefTune.Messages;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Training.Rewards;

/// <summary>The reward a run trains on, for one rollout.</summary>
public interface IRewardFunction
{
    double Reward(Rollout rollout);

    /// <summary>The rewards of a batch, in order; a model-backed reward scores them together.</summary>
    IReadOnlyList<double> Rewards(IReadOnlyList<Rollout> rollouts) => rollouts.Select(Reward).ToList();
}

/// <summary>What a reward kind is built from: the task, and for a learned reward the loaded reward model.</summary>
/// <param name="Model">The reward model (kind "model", or kind "gold" of a task whose gold reward is a model); its owner (the Scorer's cache) disposes it, not the reward function.</param>
public sealed record RewardSource(IPromptTask Task, RewardModelScorer? Model = null);

/// <summary>One registered reward kind: its name and how it is built for a task.</summary>
public sealed record RewardKind
{
    public required string Name { get; init; }
    public required string Summary { get; init; }
    public required Func<RewardSource, IRewardFunction> Create { get; init; }
}

/// <summary>Every reward kind PrefTune knows: the task's gold function and a learned reward model (the
/// sequence-classification form of a language model).</summary>
public static class RewardRegistry
{
    /// <summary>The kind a run trains on when it names no reward model.</summary>
    public const string Gold = "gold";

    /// <summary>The kind a run trains on when it names a reward_model.</summary>
    public const string Model = "model";

    public static IReadOnlyList<RewardKind> All { get; } =
    [
        new()
        {
            Name = Gold,
            Summary = "the task's ground-truth reward (the bandit study trains on it directly): its rule, or its gold reward model",
            Create = source => source.Task.GoldRewardModel is null ? new GoldReward(source.Task)
                : new ModelReward(source.Model ?? throw new ArgumentException("task.preference.gold_reward_model: the task's gold reward needs its loaded reward model"),
                    PolicyTokenizerFile(source.Task.Spec)),
        },
        new()
        {
            Name = Model,
            Summary = "a learned reward model r_phi: a sequence classifier read at the response's last content token (reward_model)",
            Create = source => new ModelReward(
                source.Model ?? throw new ArgumentException("reward_model: the model reward kind needs a loaded reward model"),
                PolicyTokenizerFile(source.Task.Spec)),
        },
    ];

    /// <exception cref="ArgumentException">Unknown name (the message lists the known ones).</exception>
    public static RewardKind Get(string name) =>
        All.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"reward: unknown reward kind '{name}'; known: {string.Join(", ", All.Select(r => r.Name))}", nameof(name));

    /// <summary>The tokenizer file of a task's language-model policy; null for a policy without one (the bandit's action ids).</summary>
    public static string? PolicyTokenizerFile(TaskSpec task) => task.Model is { } model ? LengthTask.TokenizerPath(model) : null;

    private sealed class GoldReward(IPromptTask task) : IRewardFunction
    {
        public double Reward(Rollout rollout) => task.GoldReward(rollout);
    }

    /// <summary>r_phi through <see cref="RewardModelScorer"/>; libtorch work, so callers hold <see cref="TorchRuntime.Work"/>.</summary>
    private sealed class ModelReward(RewardModelScorer model, string? policyTokenizer) : IRewardFunction
    {
        public double Reward(Rollout rollout) => Rewards([rollout])[0];
        public IReadOnlyList<double> Rewards(IReadOnlyList<Rollout> rollouts) => model.Score(rollouts, policyTokenizer);
    }
}

using PrefTune.Messages;
using PrefTune.Training.Tasks;

namespace PrefTune.Training.Rewards;

/// <summary>The reward a run trains on, for one rollout.</summary>
public interface IRewardFunction
{
    double Reward(Rollout rollout);
}

/// <summary>One registered reward kind: its name and how it is built for a task.</summary>
public sealed record RewardKind
{
    public required string Name { get; init; }
    public required string Summary { get; init; }
    public required Func<IPromptTask, IRewardFunction> Create { get; init; }
}

/// <summary>Every reward kind PrefTune knows. A learned reward model (the sequence-classification form of a language
/// model) is registered here beside the gold function.</summary>
public static class RewardRegistry
{
    /// <summary>The kind a run trains on when it names no reward model.</summary>
    public const string Gold = "gold";

    public static IReadOnlyList<RewardKind> All { get; } =
    [
        new() { Name = Gold, Summary = "the task's ground-truth reward (the bandit study trains on it directly)", Create = task => new GoldReward(task) },
    ];

    /// <exception cref="ArgumentException">Unknown name (the message lists the known ones).</exception>
    public static RewardKind Get(string name) =>
        All.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"reward: unknown reward kind '{name}'; known: {string.Join(", ", All.Select(r => r.Name))}", nameof(name));

    private sealed class GoldReward(IPromptTask task) : IRewardFunction
    {
        public double Reward(Rollout rollout) => task.GoldReward(rollout);
    }
}

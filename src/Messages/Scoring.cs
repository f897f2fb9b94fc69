namespace PrefTune.Messages;

/// <summary>Ask the Scorer for the reward a method trains on and the gold reward that is only measured.</summary>
public sealed record ScoreRollouts
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required RolloutPurpose Purpose { get; init; }
    public required TaskSpec Task { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedRolloutsConverter))]
    public required IReadOnlyList<Rollout> Rollouts { get; init; }
    /// <summary>The learned reward a method trains on (<see cref="RunSpec.RewardModel"/>); null is the task's gold reward.</summary>
    public RewardModelSpec? RewardModel { get; init; }
    /// <summary>libtorch intra-op threads for the reward model (<see cref="RunSpec.TorchThreads"/>); the gold reward uses none.</summary>
    public int TorchThreads { get; init; } = 1;

    /// <summary>The request that scores <paramref name="generated"/>'s rollouts. They go without their log-probs: a reward
    /// reads the tokens (and how a response ended), never what the sampling policy thought of them, and for a language
    /// model the log-probs are most of a packed rollout's bytes.</summary>
    public static ScoreRollouts For(RolloutsGenerated generated, TaskSpec task, RewardModelSpec? rewardModel, int torchThreads) => new()
    {
        RunId = generated.RunId, BatchId = generated.BatchId, Purpose = generated.Purpose, Task = task, RewardModel = rewardModel,
        TorchThreads = torchThreads,
        Rollouts = generated.Rollouts.Select(r => r with { TokenLogProbs = [], ReferenceLogProb = null }).ToList(),
    };
}

/// <summary>Rewards of one rollout.</summary>
public sealed record RolloutScore
{
    public required Guid SampleId { get; init; }
    /// <summary>r_phi(x, y): what the method trains on.</summary>
    public required double Reward { get; init; }
    /// <summary>The ground truth: measured, never trained on.</summary>
    public required double GoldReward { get; init; }
}

/// <summary>The Scorer's answer to <see cref="ScoreRollouts"/>.</summary>
public sealed record RolloutsScored
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required RolloutPurpose Purpose { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedScoresConverter))]
    public required IReadOnlyList<RolloutScore> Scores { get; init; }
    /// <summary>Reward-model queries spent on this batch.</summary>
    public int RewardQueries { get; init; }
}

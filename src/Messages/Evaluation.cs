namespace PrefTune.Messages;

/// <summary>
/// Ask the Sampler to measure a policy: it samples (<see cref="Sampling"/>, purpose Evaluation), has the Scorer label
/// the samples itself, and answers with aggregates only. The rollouts cross the wire once (Sampler to Scorer), not
/// three times through the Orchestrator, and are not recorded: an evaluation is a measurement, not training data.
/// </summary>
public sealed record EvaluatePolicy
{
    public required SampleRollouts Sampling { get; init; }
    /// <summary>The learned reward the run trains on, measured beside the gold reward; null when the gold reward is the reward.</summary>
    public RewardModelSpec? RewardModel { get; init; }
    /// <summary>The reference's responses to the same prompts, with one fixed seed (evaluation 0's), when the task compares
    /// the policy with the reference: the answer then carries the win rate and the gold reward increase. Null otherwise.</summary>
    public SampleRollouts? ReferenceSampling { get; init; }
}

/// <summary>The Sampler's answer to <see cref="EvaluatePolicy"/>: what the Orchestrator records as <see cref="PolicyEvaluated"/>,
/// without the run's running totals, which only the Orchestrator knows.</summary>
public sealed record EvaluationSummarized
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required int PolicyVersion { get; init; }
    public required int Samples { get; init; }
    /// <summary>Reward-model queries the Scorer spent on the samples.</summary>
    public required int RewardQueries { get; init; }
    public required double MeanGoldReward { get; init; }
    public required double GoldRewardStd { get; init; }
    /// <summary>-mean log pi(y|x) over the samples (nats).</summary>
    public required double Entropy { get; init; }
    /// <summary>The evaluation's metrics by their recorded names (eval/...).</summary>
    public required IReadOnlyDictionary<string, double> Metrics { get; init; }
}

/// <summary>The names of the comparison with the reference that <see cref="EvaluatePolicy.ReferenceSampling"/> asks for.</summary>
public static class ComparisonMetrics
{
    /// <summary>P(gold(y) &gt; gold(y')) + 1/2 P(equal) over the pairs of a policy response y and a reference response y' to the same prompt.</summary>
    public const string WinRate = "eval/win_rate";
    /// <summary>The policy's mean gold reward minus the reference's on the same prompts.</summary>
    public const string GoldRewardIncrease = "eval/gold_reward_increase";
    /// <summary>The reference's mean gold reward on those prompts.</summary>
    public const string ReferenceGoldReward = "eval/reference_gold_reward";
}

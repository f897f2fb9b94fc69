using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>What one finished run produced, as the reports need it (rebuilt from its events).</summary>
public sealed record RunOutcome
{
    public required Guid RunId { get; init; }
    public required RunSpec Spec { get; init; }
    /// <summary>"completed", "failed", "stopped" (by its owner: `resume` continues it) or, rebuilt from a stream that has
    /// no end yet, "running" (whether its owner is alive is the run's lease's business: <see cref="RunLeases"/>).</summary>
    public required string Status { get; init; }
    public string? FailureReason { get; init; }
    /// <summary>Evaluations in step order (step 0 is the reference policy).</summary>
    public required IReadOnlyList<PolicyEvaluated> Evaluations { get; init; }
    /// <summary>Every gradient step in order.</summary>
    public required IReadOnlyList<UpdateApplied> Updates { get; init; }
    /// <summary>Samples drawn from the policy for training or the dataset (not evaluation).</summary>
    public required int SamplesDrawn { get; init; }
    public required int GradientSteps { get; init; }
    public required TimeSpan Elapsed { get; init; }

    public double? FinalGoldReward => Evaluations.Count == 0 ? null : Evaluations[^1].MeanGoldReward;

    /// <summary>An evaluation metric (eval/...) at the last evaluation, or null when there was none or it lacks the metric.</summary>
    public double? FinalMetric(string name) => Evaluations.Count > 0 && Evaluations[^1].Metrics.TryGetValue(name, out var v) ? v : null;
}

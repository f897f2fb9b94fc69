namespace PrefTune.Messages;

/// <summary>A run began; carries everything needed to replay it.</summary>
public sealed record RunStarted
{
    public required Guid RunId { get; init; }
    public required RunSpec Spec { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    /// <summary>"in-memory" or the broker address without credentials.</summary>
    public string Transport { get; init; } = "in-memory";
}

/// <summary>A run reached its gradient-step budget.</summary>
public sealed record RunCompleted
{
    public required Guid RunId { get; init; }
    public required int GradientSteps { get; init; }
    public required int PolicyVersion { get; init; }
    public double? FinalGoldReward { get; init; }
    public required DateTimeOffset CompletedAt { get; init; }
}

/// <summary>A run stopped on an error; Reason says what and where.</summary>
public sealed record RunFailed
{
    public required Guid RunId { get; init; }
    public required string Reason { get; init; }
    /// <summary>The stage that failed: "sampler", "scorer", "learner", "orchestrator", "broker", "event-store".</summary>
    public string? Stage { get; init; }
    public required DateTimeOffset FailedAt { get; init; }
}

/// <summary>The policy was evaluated on fresh samples scored by the gold reward.</summary>
public sealed record PolicyEvaluated
{
    public required Guid RunId { get; init; }
    public required int PolicyVersion { get; init; }
    /// <summary>Gradient steps applied when evaluated (equals the version).</summary>
    public required int Step { get; init; }
    public required int Samples { get; init; }
    public required double MeanGoldReward { get; init; }
    public required double GoldRewardStd { get; init; }
    /// <summary>Monte-Carlo entropy estimate, -mean log pi(y|x) over the samples (nats).</summary>
    public required double Entropy { get; init; }
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();
}

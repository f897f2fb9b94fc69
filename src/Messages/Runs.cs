namespace PrefTune.Messages;

/// <summary>A run began; carries everything needed to replay it.</summary>
public sealed record RunStarted
{
    public required Guid RunId { get; init; }
    public required RunSpec Spec { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    /// <summary>"in-memory" or the broker address without credentials.</summary>
    public string Transport { get; init; } = "in-memory";
    /// <summary>A counterfactual replay: the run whose recorded batches this run trains on (with another method).</summary>
    public Guid? ReplayOf { get; init; }
    /// <summary>What bit-for-bit reproduction depends on (library versions, CPU, threads); replay compares it.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
}

/// <summary>A stopped run was continued from its event stream and last checkpoint (`preftune resume`).</summary>
public sealed record RunResumed
{
    public required Guid RunId { get; init; }
    /// <summary>The policy version training continues from.</summary>
    public required int PolicyVersion { get; init; }
    /// <summary>The first iteration of Algorithm 1 still to assemble.</summary>
    public required int NextIteration { get; init; }
    /// <summary>A batch that was recorded but whose training was never recorded; it is trained first, not dropped.</summary>
    public Guid? PendingBatch { get; init; }
    /// <summary>The last checkpoint's weights were no longer stored (transient, removed): the recorded batches after this
    /// kept version were trained again, each hash checked against the recorded one, before the run went on.</summary>
    public int? RetrainedFrom { get; init; }
    public required DateTimeOffset ResumedAt { get; init; }
    public string Transport { get; init; } = "in-memory";
}

/// <summary>The Learner's trajectory was rebuilt from the recorded batches alone and compared, checkpoint by checkpoint.</summary>
public sealed record RunReplayed
{
    public required Guid RunId { get; init; }
    /// <summary>Checkpoints compared (the initial policy and one per trained batch) and how many had the recorded hash.</summary>
    public required int Checkpoints { get; init; }
    public required int Matched { get; init; }
    /// <summary>Policy version of the first checkpoint whose hash differed, if any.</summary>
    public int? FirstMismatch { get; init; }
    /// <summary>Why the replay could not promise exactness (environment differences), empty when it could.</summary>
    public IReadOnlyList<string> Caveats { get; init; } = [];
    public required double Seconds { get; init; }
    public required DateTimeOffset ReplayedAt { get; init; }
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

/// <summary>
/// The run's owner stopped it on purpose (a first Ctrl-C, SIGINT or SIGTERM): the step under way was abandoned
/// (a batch recorded but not trained is trained first on resume), and `preftune resume` continues it exactly.
/// A stop of its own rather than a <see cref="RunFailed"/> with reason "interrupted": nothing went wrong, so
/// `runs`, summaries and reports must not count it as a failure, and a failure's reason stays what broke.
/// </summary>
public sealed record RunStopped
{
    public required Guid RunId { get; init; }
    /// <summary>"interrupted" (a signal) or "cancelled" (the caller's token, no signal).</summary>
    public required string Reason { get; init; }
    /// <summary>The signal that stopped it: "SIGINT" or "SIGTERM"; null when none did.</summary>
    public string? Signal { get; init; }
    /// <summary>The last policy version the run recorded (resume continues from it).</summary>
    public required int PolicyVersion { get; init; }
    public required DateTimeOffset StoppedAt { get; init; }
}

/// <summary>
/// A stage service this run's Orchestrator had started as a child process died and was started again
/// (`run --broker` without `--external-services`). Recorded with the run's next facts; the run's numbers do not
/// depend on it (the request it held is asked again), but whoever reads the run should know it happened.
/// </summary>
public sealed record ServiceRestarted
{
    public required Guid RunId { get; init; }
    /// <summary>"sampler", "scorer" or "learner".</summary>
    public required string Role { get; init; }
    public required int OldProcessId { get; init; }
    /// <summary>The exit code of the process that died (137 for SIGKILL).</summary>
    public required int ExitCode { get; init; }
    public required int NewProcessId { get; init; }
    /// <summary>Restarts of this role so far, this one included, and the most it gets.</summary>
    public required int Restart { get; init; }
    public required int RestartLimit { get; init; }
    public required DateTimeOffset RestartedAt { get; init; }
}

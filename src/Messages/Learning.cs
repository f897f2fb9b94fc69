namespace PrefTune.Messages;

/// <summary>A rollout with the training reward attached: what the Learner sees (never the gold reward).</summary>
public sealed record TrainingSample
{
    public required Rollout Rollout { get; init; }
    public required double Reward { get; init; }
}

/// <summary>The Orchestrator put together D for one iteration (Algorithm 1, step 2) and recorded where it came from.</summary>
public sealed record TrainingBatchAssembled
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required int Iteration { get; init; }
    public required DataSource Source { get; init; }
    /// <summary>The learner's policy version when the batch was handed over.</summary>
    public required int PolicyVersion { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedIdsConverter))]
    public required IReadOnlyList<Guid> SampleIds { get; init; }
}

/// <summary>Ask the Learner to run T passes of minibatches of M over D (Algorithm 1, step 4).</summary>
public sealed record TrainPolicy
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required int Iteration { get; init; }
    public required TaskSpec Task { get; init; }
    public required MethodSpec Method { get; init; }
    public required LoopSpec Loop { get; init; }
    /// <summary>The weights the Learner should hold before this batch; a Learner without them loads this checkpoint.</summary>
    public required CheckpointRef Policy { get; init; }
    public required CheckpointRef Reference { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedSamplesConverter))]
    public required IReadOnlyList<TrainingSample> Samples { get; init; }
    /// <summary>Seeds the minibatch order.</summary>
    public required long Seed { get; init; }
    public int TorchThreads { get; init; } = 1;
    /// <summary>The run's optimizer (<see cref="RunSpec.Optimizer"/>); null is plain Adam at Loop.LearningRate.</summary>
    public OptimizerSettings? Optimizer { get; init; }
    /// <summary>Store the resulting checkpoint for good (a kept version: see <see cref="LoopSpec.CheckpointEvery"/>); false
    /// stores it as the run's transient copy, which the Orchestrator removes once nothing needs it. True by default: an
    /// Orchestrator that predates retention keeps every version.</summary>
    public bool KeepCheckpoint { get; init; } = true;
}

/// <summary>One gradient step was applied.</summary>
public sealed record UpdateApplied
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    /// <summary>Gradient step number, 1-based over the run.</summary>
    public required int Step { get; init; }
    /// <summary>Pass over D (0..T-1) and minibatch within it.</summary>
    public required int Pass { get; init; }
    public required int Minibatch { get; init; }
    public required int VersionBefore { get; init; }
    public required int VersionAfter { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedIdsConverter))]
    public required IReadOnlyList<Guid> SampleIds { get; init; }
    public required double Loss { get; init; }
    /// <summary>Per-step training metrics with TRL's names and a train/ prefix.</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();
    /// <summary>
    /// Per sample, aligned with <see cref="SampleIds"/>: log pi_theta(y|x) - log pi_old(y|x), theta the weights
    /// before this step, pi_old the policy that sampled y. exp of it is the importance ratio. Null in runs
    /// recorded before it existed.
    /// </summary>
    public IReadOnlyList<double>? LogRatios { get; init; }
    /// <summary>The (chosen, rejected) pairs the step trained on, for methods that form pairs (dpo, ipo, best-of-n-neg*);
    /// null for the others, empty when no pair passed the rule.</summary>
    public IReadOnlyList<PairBuilt>? Pairs { get; init; }
}

/// <summary>One preference pair a pair method built from a minibatch and trained on.</summary>
public sealed record PairBuilt
{
    public required Guid ChosenSampleId { get; init; }
    public required Guid RejectedSampleId { get; init; }
    /// <summary>The training rewards the pair was ranked by.</summary>
    public required double ChosenReward { get; init; }
    public required double RejectedReward { get; init; }
    /// <summary>How the loss formed its pairs: "ranked-pairs" (every ordered pair of a prompt's responses with a reward
    /// gap above the threshold: dpo, ipo), "best-vs-worst" (best-of-n-neg), "best-vs-each-worse" (its -avg and -sum forms).</summary>
    public required string Rule { get; init; }
    /// <summary>The reward gap the pair had to exceed: ChosenReward - RejectedReward &gt; Threshold.</summary>
    public required double Threshold { get; init; }
    /// <summary>The responses to the prompt the pair was chosen among (C).</summary>
    public int Candidates { get; init; }
}

/// <summary>The Learner finished a <see cref="TrainPolicy"/> batch and stored the resulting weights.</summary>
public sealed record PolicyTrained
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required int Steps { get; init; }
    public required CheckpointRef Checkpoint { get; init; }
    /// <summary>The gradient steps of this batch, in order. Recorded empty: each step is on record once, as the
    /// <see cref="UpdateApplied"/> events just before this one (runs recorded before that have them twice).</summary>
    public IReadOnlyList<UpdateApplied> Updates { get; init; } = [];
}

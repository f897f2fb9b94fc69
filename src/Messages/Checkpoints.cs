namespace PrefTune.Messages;

/// <summary>Weights at a policy version, by content: the same hash always means the same bytes.</summary>
public sealed record CheckpointRef
{
    /// <summary>Gradient steps applied to reach these weights; the reference is version 0.</summary>
    public required int Version { get; init; }
    /// <summary>Lower-case hex SHA-256 of the serialized weights.</summary>
    public required string Sha256 { get; init; }
    /// <summary>Where to fetch them: "pg://sha256/{hash}" or "file:///dir/{hash}.ckpt".</summary>
    public required string Uri { get; init; }
    public required long Bytes { get; init; }
    /// <summary>The Learner's state beside the weights (optimizer moments and step, a loss's running baseline), so
    /// that training continues from here exactly as if nothing had stopped. Samplers never need it.</summary>
    public CheckpointRef? TrainerState { get; init; }
}

/// <summary>Ask the Learner to build the run's policy and reference (seeded) and publish version 0.</summary>
public sealed record InitializePolicy
{
    public required Guid RunId { get; init; }
    public required TaskSpec Task { get; init; }
    public required int Seed { get; init; }
    public int TorchThreads { get; init; } = 1;
}

/// <summary>The reference policy was fitted; the trainable policy starts as a copy of it.</summary>
public sealed record PolicyInitialized
{
    public required Guid RunId { get; init; }
    public required CheckpointRef Reference { get; init; }
    public required CheckpointRef Policy { get; init; }
    /// <summary>Final loss of the reference fit (cross-entropy to pi_data for the bandit).</summary>
    public double ReferenceFitLoss { get; init; }
}

/// <summary>A new policy version is in the checkpoint store.</summary>
public sealed record CheckpointPublished
{
    public required Guid RunId { get; init; }
    public required CheckpointRef Checkpoint { get; init; }
}

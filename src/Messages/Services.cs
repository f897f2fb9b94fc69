namespace PrefTune.Messages;

/// <summary>Ask every running service to announce itself (the Orchestrator waits for all roles before a run).</summary>
public sealed record PingServices
{
    public required Guid RequestId { get; init; }
}

/// <summary>A service is up and consuming.</summary>
public sealed record ServiceAvailable
{
    public required Guid RequestId { get; init; }
    /// <summary>"sampler", "scorer" or "learner".</summary>
    public required string Role { get; init; }
    public required string Host { get; init; }
    public required int ProcessId { get; init; }
}

/// <summary>A stage could not handle a command; the Orchestrator fails the run with this reason.</summary>
public sealed record StageFaulted
{
    public required Guid RunId { get; init; }
    public required string Stage { get; init; }
    public required string Reason { get; init; }
    public Guid? BatchId { get; init; }
}

using PrefTune.Messages;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>A loaded experiment file: one <see cref="RunSpec"/> per (method entry × seed), in file order.</summary>
public sealed record Experiment
{
    /// <summary>The file's <c>name</c>; every run's <see cref="RunSpec.Experiment"/>.</summary>
    public required string Name { get; init; }
    public string? Description { get; init; }
    public required IReadOnlyList<RunSpec> Runs { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
}

namespace PrefTune.Messages;

/// <summary>One file of a preference dataset as written: its name in the dataset's folder and its content's hash.</summary>
public sealed record DatasetFile
{
    public required string Name { get; init; }
    public required string Sha256 { get; init; }
    public required long Bytes { get; init; }
}

/// <summary>
/// A preference dataset was built from a reference model (`preftune preference-data`), recorded as the one event of its
/// own stream keyed by DatasetId: what sampled it, how it was scored and paired, and the files' hashes, so a training
/// run that reads it later can name exactly which data it learned from.
/// </summary>
public sealed record PreferenceDatasetBuilt
{
    public required Guid DatasetId { get; init; }
    public required DateTimeOffset BuiltAt { get; init; }
    /// <summary>The experiment file the task came from (for messages only).</summary>
    public string? SourceName { get; init; }
    /// <summary>The reference model's path and tokenizer, as resolved.</summary>
    public required string ModelPath { get; init; }
    public required string Tokenizer { get; init; }
    /// <summary>The prompt file, as resolved, and how many prompts it held.</summary>
    public required string Prompts { get; init; }
    public required int PromptCount { get; init; }
    /// <summary>The length goal: min, mode or skew.</summary>
    public required string Goal { get; init; }
    /// <summary>Goal mode: the mode scored against (given, or computed from the samples).</summary>
    public int? ModeLength { get; init; }
    /// <summary>Goal skew: the most tokens a completion kept.</summary>
    public int? SkewTruncate { get; init; }
    public required long Seed { get; init; }
    /// <summary>C: responses sampled per prompt.</summary>
    public required int ResponsesPerPrompt { get; init; }
    public required bool KeepTies { get; init; }
    public required int Pairs { get; init; }
    public required IReadOnlyList<DatasetFile> Files { get; init; }
}

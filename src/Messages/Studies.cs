namespace PrefTune.Messages;

/// <summary>
/// Which cell of a study's grid a run fills: a reward, a method (main grid) or a sweep value, and a seed.
/// Main-grid cells have no <see cref="SweepField"/>; sweep cells name the loop field and the value they set.
/// </summary>
public sealed record StudyCell
{
    /// <summary>The reward's label in the study file, e.g. "peak70".</summary>
    public required string Reward { get; init; }
    /// <summary>The method's label (main grid), e.g. "dpo (online)", or the sweep's label, e.g. "rwr-B".</summary>
    public required string Label { get; init; }
    /// <summary>The swept loop field ("B", "C", "M", "T", "learning_rate", "gradient_steps"); null in the main grid.</summary>
    public string? SweepField { get; init; }
    /// <summary>The value the sweep gave that field; null in the main grid.</summary>
    public double? SweepValue { get; init; }
    public required int Seed { get; init; }
}

/// <summary>A study began: a grid of runs (methods × rewards × seeds, plus sweeps), recorded as one stream keyed by StudyId.</summary>
public sealed record StudyStarted
{
    public required Guid StudyId { get; init; }
    /// <summary>The study file's <c>name</c>.</summary>
    public required string Name { get; init; }
    /// <summary>The study file's text as it was run: re-reading it gives back every run's spec and the report's layout.</summary>
    public required string SourceText { get; init; }
    /// <summary>Where the file was read from (for messages only).</summary>
    public string? SourceName { get; init; }
    /// <summary>Runs the study will make.</summary>
    public required int RunCount { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
}

/// <summary>One run of a study ended; the run's own stream (keyed by RunId) holds its facts.</summary>
public sealed record StudyRunFinished
{
    public required Guid StudyId { get; init; }
    public required Guid RunId { get; init; }
    public required StudyCell Cell { get; init; }
    /// <summary>"completed" or "failed", as the run's stream records it.</summary>
    public required string Status { get; init; }
    /// <summary>The run was made for an earlier cell with the same spec (labels aside) and is linked again, not re-run.</summary>
    public bool Reused { get; init; }
}

/// <summary>Every run of a study ended and its report was written.</summary>
public sealed record StudyCompleted
{
    public required Guid StudyId { get; init; }
    public required DateTimeOffset CompletedAt { get; init; }
    /// <summary>The folder the report was written to.</summary>
    public required string ReportFolder { get; init; }
}

/// <summary>
/// A study's task (one entry of its reward axis) was prepared as the paper prepares each length task: a preference
/// dataset sampled from the reference and labelled by the task's gold rule, and a proxy reward model trained on it. The
/// dataset and the model are facts of their own streams (<see cref="PreferenceDatasetBuilt"/>, <see cref="RewardModelTrained"/>);
/// this links them to the study, and every run of the task names the two paths in its spec.
/// </summary>
public sealed record StudyTaskPrepared
{
    public required Guid StudyId { get; init; }
    /// <summary>The reward axis entry's label, e.g. "min".</summary>
    public required string Reward { get; init; }
    /// <summary>What identifies the preparation: a hash of the task, the reference's files and the preparation settings.
    /// An equal key finds the earlier preparation, which is then reused rather than made again.</summary>
    public required string Key { get; init; }
    public required Guid DatasetId { get; init; }
    /// <summary>The pairs file the task's offline methods train on (absolute).</summary>
    public required string DatasetFile { get; init; }
    public required int Pairs { get; init; }
    /// <summary>Goal mode: the mode the gold reward peaks at (computed from the dataset's samples unless given).</summary>
    public int? ModeLength { get; init; }
    public required Guid RewardModelId { get; init; }
    /// <summary>The reward model's directory, which the task's runs name as reward_model.path (absolute).</summary>
    public required string RewardModel { get; init; }
    /// <summary>Held-out pairs the reward model ranked, and the share it ranked right; null when none were held out.</summary>
    public int EvalPairs { get; init; }
    public double? EvalAccuracy { get; init; }
    /// <summary>Made by an earlier study (the same key) and linked here.</summary>
    public bool Reused { get; init; }
}

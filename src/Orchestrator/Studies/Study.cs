using System.Globalization;
using PrefTune.Messages;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Orchestrator.Studies;

/// <summary>
/// A loaded study file: the main grid (rewards × methods × seeds) and the sweeps (rewards × swept values × seeds),
/// expanded into <see cref="Runs"/> in a fixed order: the main grid reward by reward (methods, then seeds, as in an
/// experiment file), then each reward's sweeps in file order, value by value, seed by seed.
/// </summary>
public sealed record Study
{
    /// <summary>The file's <c>name</c>; every run's <see cref="RunSpec.Experiment"/> and the report folder's prefix.</summary>
    public required string Name { get; init; }
    public string? Description { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
    /// <summary>The method labels of the main grid, in file order.</summary>
    public required IReadOnlyList<string> Methods { get; init; }
    public required IReadOnlyList<StudyReward> Rewards { get; init; }
    public required IReadOnlyList<StudySweep> Sweeps { get; init; }
    public required IReadOnlyList<StudyRun> Runs { get; init; }
    /// <summary>The prepare block: each task's preference data and reward model are made before its runs (a length study,
    /// as the paper prepares its tasks); null when the runs train on what the file names.</summary>
    public StudyPreparation? Preparation { get; init; }
}

/// <summary>One entry of the reward axis: the study's task with this entry's overrides (of its bandit or length block).</summary>
public sealed record StudyReward(string Label, TaskSpec Task);

/// <summary>
/// How a length study prepares each of its tasks: `preftune preference-data`'s settings for the dataset sampled from the
/// reference, and `preftune train-rm`'s for the proxy reward model trained on it (from the reference's weights). The
/// task's online methods then train on that reward model, its offline methods on that dataset (C = 2: y_w and y_l).
/// </summary>
public sealed record StudyPreparation
{
    public PreferenceDatasetSettings Data { get; init; } = new();
    public RewardTrainingSettings RewardModel { get; init; } = new();
}

/// <summary>One method re-run over values of one loop field, everything else as in the study's loop.</summary>
public sealed record StudySweep
{
    public required string Label { get; init; }
    public required MethodSpec Method { get; init; }
    /// <summary>The loop field as the file spells it: B, C, M, T, learning_rate or gradient_steps.</summary>
    public required string Field { get; init; }
    public required IReadOnlyList<double> Values { get; init; }

    /// <summary>The run label of one value, e.g. "rwr online B=40".</summary>
    public string RunLabel(double value) =>
        $"{Method.Name} {Method.Data.ToString().ToLowerInvariant()} {Field}={StudyValues.Format(value)}";
}

/// <summary>A run to make and the cell of the grid it fills.</summary>
public sealed record StudyRun(StudyCell Cell, RunSpec Spec);

/// <summary>The loop fields a sweep may vary, and how a value is written back into a <see cref="LoopSpec"/>.</summary>
public static class StudyValues
{
    /// <summary>Sweepable fields; all but learning_rate take whole numbers.</summary>
    public static readonly IReadOnlyList<string> Fields = ["B", "C", "M", "T", "learning_rate", "gradient_steps"];

    public static bool IsInteger(string field) => field != "learning_rate";

    public static LoopSpec Apply(LoopSpec loop, string field, double value) => field switch
    {
        "B" => loop with { B = (int)value },
        "C" => loop with { C = (int)value },
        "M" => loop with { M = (int)value },
        "T" => loop with { T = (int)value },
        "gradient_steps" => loop with { GradientSteps = (int)value },
        "learning_rate" => loop with { LearningRate = value },
        _ => throw new ArgumentException($"sweep field '{field}' is not one of {string.Join(", ", Fields)}", nameof(field)),
    };

    public static string Format(double value) => value.ToString("G", CultureInfo.InvariantCulture);
}

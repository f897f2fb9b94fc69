using System.Text.Json.Serialization;
using PrefTune.Messages;

namespace PrefTune.Storage.Events;

/// <summary>
/// What every sample went through in one run, rebuilt from its stream by <see cref="RunLedgerProjection"/>:
/// the lags of each gradient step, each sample's reuse, the staleness of each batch at hand-over, and the
/// published checkpoints. Staleness is measured in policy versions (one version per gradient step).
/// </summary>
public sealed class RunLedger
{
    /// <summary>The RunId (the stream key).</summary>
    public Guid Id { get; set; }
    /// <summary>Training and dataset samples by SampleId (evaluation samples are never trained on).</summary>
    public Dictionary<Guid, SampleLedger> Samples { get; init; } = [];
    /// <summary>Gradient steps in the order recorded.</summary>
    public List<StepLags> Steps { get; init; } = [];
    /// <summary>Training batches in the order recorded.</summary>
    public List<BatchStaleness> Batches { get; init; } = [];
    /// <summary>Published checkpoints by policy version.</summary>
    public SortedDictionary<int, CheckpointRef> Checkpoints { get; init; } = [];

    /// <summary>The run-level distributions (lag, reuse, importance ratio, batch staleness).</summary>
    public RunStaleness Staleness() => RunStaleness.Of(this);

    /// <summary>The gradient steps that produced policy <paramref name="version"/>, or null if it was never published.</summary>
    public CheckpointLineage? LineageOf(int version) =>
        Checkpoints.TryGetValue(version, out var checkpoint)
            ? new CheckpointLineage(checkpoint, Steps.Where(s => s.VersionAfter <= version).ToList())
            : null;
}

/// <summary>One gradient step and how old its samples were: lag = VersionBefore - the sample's sampling version.</summary>
public sealed record StepLags
{
    public required int Step { get; init; }
    public required Guid BatchId { get; init; }
    public required int Pass { get; init; }
    public required int Minibatch { get; init; }
    public required int VersionBefore { get; init; }
    public required int VersionAfter { get; init; }
    public required IReadOnlyList<Guid> SampleIds { get; init; }
    /// <summary>
    /// The policy version that sampled each of <see cref="SampleIds"/>, in that order. A sample the stream does
    /// not show being sampled is left out; none is, as the Orchestrator records a batch before anyone learns from it.
    /// </summary>
    public required IReadOnlyList<int> SamplingVersions { get; init; }

    public IReadOnlyList<int> Lags => SamplingVersions.Select(v => VersionBefore - v).ToList();
    [JsonPropertyName("stats/lag_min")] public int LagMin => SamplingVersions.Count == 0 ? 0 : VersionBefore - SamplingVersions.Max();
    [JsonPropertyName("stats/lag_mean")] public double LagMean => SamplingVersions.Count == 0 ? 0 : VersionBefore - SamplingVersions.Average();
    [JsonPropertyName("stats/lag_max")] public int LagMax => SamplingVersions.Count == 0 ? 0 : VersionBefore - SamplingVersions.Min();
}

/// <summary>One sample and every gradient step that used it.</summary>
public sealed record SampleLedger
{
    public required Guid SampleId { get; init; }
    /// <summary>The policy version that generated it.</summary>
    public required int SamplingVersion { get; init; }
    public List<SampleUse> Uses { get; init; } = [];
}

/// <summary>A gradient step's use of a sample: where in Algorithm 1 it happened and how far the learner had moved.</summary>
/// <param name="VersionBefore">The learner's version before the step.</param>
/// <param name="LogRatio">log pi_theta(y|x) - log pi_old(y|x) before the step, when the Learner recorded it.</param>
public sealed record SampleUse(int Step, int Pass, int Minibatch, int VersionBefore, int Lag, double? LogRatio)
{
    public double? ImportanceRatio => LogRatio is { } log ? Math.Exp(log) : null;
}

/// <summary>
/// A training batch when it was handed to the Learner: its staleness is the learner's version then minus its
/// samples' sampling versions (the asynchronous mode bounds the maximum by K; synchronous online runs have 0).
/// </summary>
public sealed record BatchStaleness
{
    public required Guid BatchId { get; init; }
    public required int Iteration { get; init; }
    /// <summary>The learner's version when the batch was handed over.</summary>
    public required int PolicyVersion { get; init; }
    public required int Samples { get; init; }
    public required int OldestSamplingVersion { get; init; }
    public required int NewestSamplingVersion { get; init; }
    [JsonPropertyName("stats/staleness_min")] public int StalenessMin => PolicyVersion - NewestSamplingVersion;
    [JsonPropertyName("stats/staleness_mean")] public required double StalenessMean { get; init; }
    [JsonPropertyName("stats/staleness_max")] public int StalenessMax => PolicyVersion - OldestSamplingVersion;
}

/// <summary>The checkpoint of a policy version and every gradient step up to it, with the samples each used.</summary>
public sealed record CheckpointLineage(CheckpointRef Checkpoint, IReadOnlyList<StepLags> Updates);

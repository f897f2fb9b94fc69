using Marten;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>Counts of what a run's stream records: the numbers `preftune show` reports.</summary>
public sealed record RunCounts
{
    public int TrainingBatches { get; init; }
    public int DatasetBatches { get; init; }
    public int SamplesGenerated { get; init; }
    public int SamplesScored { get; init; }
    public int BatchesAssembled { get; init; }
    public int SamplesConsumed { get; init; }
    public int Updates { get; init; }
    public int Checkpoints { get; init; }
    public int Evaluations { get; init; }
    public int Events { get; init; }
}

/// <summary>
/// Off-policy staleness and sample reuse, measured from the record. Lag of a sample in a gradient step =
/// the learner's policy version before the step minus the version that sampled it (0 = on-policy).
/// Reuse of a sample = how many gradient steps consumed it. Names follow the ecosystem's stats/ metrics.
/// </summary>
public sealed record RunStaleness
{
    public int LagMin { get; init; }
    public double LagMean { get; init; }
    public int LagMax { get; init; }
    /// <summary>Lag → number of (step, sample) uses with that lag.</summary>
    public SortedDictionary<int, int> LagHistogram { get; init; } = [];
    /// <summary>Times a sample was used → number of samples used that often.</summary>
    public SortedDictionary<int, int> ReuseHistogram { get; init; } = [];

    public static RunStaleness Of(IReadOnlyList<RolloutsGenerated> generated, IReadOnlyList<UpdateApplied> updates)
    {
        var sampledAt = generated.SelectMany(g => g.Rollouts).ToDictionary(r => r.SampleId, r => r.PolicyVersion);
        var lags = updates.SelectMany(u => u.SampleIds.Where(sampledAt.ContainsKey).Select(id => u.VersionBefore - sampledAt[id])).ToList();
        var uses = updates.SelectMany(u => u.SampleIds).GroupBy(id => id).Select(g => g.Count());
        return new RunStaleness
        {
            LagMin = lags.Count == 0 ? 0 : lags.Min(),
            LagMean = lags.Count == 0 ? 0 : lags.Average(),
            LagMax = lags.Count == 0 ? 0 : lags.Max(),
            LagHistogram = new SortedDictionary<int, int>(lags.GroupBy(l => l).ToDictionary(g => g.Key, g => g.Count())),
            ReuseHistogram = new SortedDictionary<int, int>(uses.GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count())),
        };
    }
}

/// <summary>A run rebuilt from its event stream alone: the facts are the source of truth.</summary>
public sealed record RunRecord(RunStarted Started, RunOutcome Outcome, RunCounts Counts, DateTimeOffset? EndedAt, RunStaleness Staleness);

public static class RunHistory
{
    public static async Task<RunRecord?> LoadAsync(IDocumentStore store, Guid runId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var events = (await session.Events.FetchStreamAsync(runId, token: ct)).Select(e => e.Data).ToList();
        if (events.FirstOrDefault() is not RunStarted started) return null;

        var generated = events.OfType<RolloutsGenerated>().ToList();
        var updates = events.OfType<UpdateApplied>().ToList();
        var evaluations = events.OfType<PolicyEvaluated>().ToList();
        var completed = events.OfType<RunCompleted>().LastOrDefault();
        var failed = events.OfType<RunFailed>().LastOrDefault();
        var counts = new RunCounts
        {
            TrainingBatches = generated.Count(g => g.Purpose == RolloutPurpose.Training),
            DatasetBatches = generated.Count(g => g.Purpose == RolloutPurpose.Dataset),
            SamplesGenerated = generated.Sum(g => g.Rollouts.Count),
            SamplesScored = events.OfType<RolloutsScored>().Sum(s => s.Scores.Count),
            BatchesAssembled = events.OfType<TrainingBatchAssembled>().Count(),
            SamplesConsumed = updates.Sum(u => u.SampleIds.Count),
            Updates = updates.Count,
            Checkpoints = events.OfType<CheckpointPublished>().Count(),
            Evaluations = evaluations.Count,
            Events = events.Count,
        };
        var endedAt = completed?.CompletedAt ?? failed?.FailedAt;
        var outcome = new RunOutcome
        {
            RunId = runId,
            Spec = started.Spec,
            Status = completed is not null ? "completed" : failed is not null ? "failed" : "running",
            FailureReason = failed is null ? null : $"{failed.Stage}: {failed.Reason}",
            Evaluations = evaluations,
            Updates = updates,
            SamplesDrawn = counts.SamplesGenerated,
            GradientSteps = updates.Count,
            Elapsed = (endedAt ?? DateTimeOffset.UtcNow) - started.StartedAt,
        };
        return new RunRecord(started, outcome, counts, endedAt, RunStaleness.Of(generated, updates));
    }
}

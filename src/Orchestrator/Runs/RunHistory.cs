using Marten;
using PrefTune.Messages;
using PrefTune.Storage.Events;

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

/// <summary>A run rebuilt from its event stream alone: the facts are the source of truth.</summary>
/// <param name="Ledger">Lags, reuse and lineage per step, sample, batch and checkpoint.</param>
/// <param name="Staleness">The run-level distributions of the ledger.</param>
public sealed record RunRecord(RunStarted Started, RunOutcome Outcome, RunCounts Counts, DateTimeOffset? EndedAt, RunLedger Ledger, RunStaleness Staleness);

public static class RunHistory
{
    public static async Task<RunRecord?> LoadAsync(IDocumentStore store, Guid runId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var stream = await session.Events.FetchStreamAsync(runId, token: ct);
        var events = stream.Select(e => e.Data).ToList();
        if (events.FirstOrDefault() is not RunStarted started) return null;

        var generated = events.OfType<RolloutsGenerated>().ToList();
        var updates = events.OfType<UpdateApplied>().ToList();
        var evaluations = events.OfType<PolicyEvaluated>().ToList();
        var completed = events.OfType<RunCompleted>().LastOrDefault();
        // A failure or a stop followed by a resume no longer describes the run.
        var sinceResume = events.Skip(events.FindLastIndex(e => e is RunResumed) + 1).ToList();
        var failed = sinceResume.OfType<RunFailed>().LastOrDefault();
        var stopped = sinceResume.OfType<RunStopped>().LastOrDefault();
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
        var endedAt = completed?.CompletedAt ?? failed?.FailedAt ?? stopped?.StoppedAt;
        var outcome = new RunOutcome
        {
            RunId = runId,
            Spec = started.Spec,
            Status = completed is not null ? "completed" : failed is not null ? "failed" : stopped is not null ? "stopped" : "running",
            FailureReason = failed is not null ? $"{failed.Stage}: {failed.Reason}"
                : stopped is not null ? (stopped.Signal is null ? stopped.Reason : $"{stopped.Reason} ({stopped.Signal})") : null,
            Evaluations = evaluations,
            Updates = updates,
            SamplesDrawn = counts.SamplesGenerated,
            GradientSteps = updates.Count,
            Elapsed = (endedAt ?? DateTimeOffset.UtcNow) - started.StartedAt,
        };
        // the live projection folded over the events already read, rather than reading the stream a second time
        var projection = new RunLedgerProjection();
        var ledger = stream.Aggregate((RunLedger?)null, (state, e) => projection.Evolve(state, runId, e)) ?? new RunLedger { Id = runId };
        return new RunRecord(started, outcome, counts, endedAt, ledger, ledger.Staleness());
    }

    /// <summary>The run's <see cref="RunLedger"/>, folded from its stream on demand (a live projection).</summary>
    public static async Task<RunLedger> LoadLedgerAsync(IDocumentStore store, Guid runId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        return await LedgerAsync(session, runId, ct);
    }

    private static async Task<RunLedger> LedgerAsync(IQuerySession session, Guid runId, CancellationToken ct) =>
        await session.Events.AggregateStreamAsync<RunLedger>(runId, token: ct) ?? new RunLedger { Id = runId };
}

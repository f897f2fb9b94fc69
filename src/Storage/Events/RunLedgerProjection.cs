using JasperFx.Events;
using Marten.Events.Aggregation;
using PrefTune.Messages;

namespace PrefTune.Storage.Events;

/// <summary>
/// Builds a run's <see cref="RunLedger"/> from its stream. Registered Live: nothing is written while the run
/// runs (an inline projection would slow every append); it is folded on demand with
/// <c>session.Events.AggregateStreamAsync&lt;RunLedger&gt;(runId)</c>.
/// The ledger is mutated in place: a run holds thousands of samples, and copying them per event would be quadratic.
/// </summary>
public sealed class RunLedgerProjection : SingleStreamProjection<RunLedger, Guid>
{
    public override RunLedger Evolve(RunLedger? snapshot, Guid id, IEvent e)
    {
        var ledger = snapshot ?? new RunLedger { Id = id };
        switch (e.Data)
        {
            case RolloutsGenerated { Purpose: RolloutPurpose.Training or RolloutPurpose.Dataset } generated:
                foreach (var rollout in generated.Rollouts)
                    ledger.Samples[rollout.SampleId] = new SampleLedger { SampleId = rollout.SampleId, SamplingVersion = rollout.PolicyVersion };
                break;
            case TrainingBatchAssembled batch:
                ledger.Batches.Add(Staleness(batch, Sampled(ledger, batch.SampleIds).Select(s => s.SamplingVersion).ToList()));
                break;
            case UpdateApplied update:
                Record(ledger, update);
                break;
            case CheckpointPublished published:
                ledger.Checkpoints[published.Checkpoint.Version] = published.Checkpoint;
                break;
        }
        return ledger;
    }

    private static void Record(RunLedger ledger, UpdateApplied update)
    {
        var used = new List<int>(update.SampleIds.Count);
        for (var i = 0; i < update.SampleIds.Count; i++)
        {
            if (!ledger.Samples.TryGetValue(update.SampleIds[i], out var sample)) continue;
            used.Add(sample.SamplingVersion);
            sample.Uses.Add(new SampleUse(update.Step, update.Pass, update.Minibatch, update.VersionBefore,
                update.VersionBefore - sample.SamplingVersion, update.LogRatios?[i]));
        }
        ledger.Steps.Add(new StepLags
        {
            Step = update.Step, BatchId = update.BatchId, Pass = update.Pass, Minibatch = update.Minibatch,
            VersionBefore = update.VersionBefore, VersionAfter = update.VersionAfter,
            SampleIds = update.SampleIds, SamplingVersions = used,
        });
    }

    private static BatchStaleness Staleness(TrainingBatchAssembled batch, IReadOnlyList<int> versions) => new()
    {
        BatchId = batch.BatchId,
        Iteration = batch.Iteration,
        PolicyVersion = batch.PolicyVersion,
        Samples = versions.Count,
        OldestSamplingVersion = versions.Count == 0 ? batch.PolicyVersion : versions.Min(),
        NewestSamplingVersion = versions.Count == 0 ? batch.PolicyVersion : versions.Max(),
        StalenessMean = versions.Count == 0 ? 0 : batch.PolicyVersion - versions.Average(),
    };

    private static IEnumerable<SampleLedger> Sampled(RunLedger ledger, IEnumerable<Guid> ids) =>
        ids.Select(id => ledger.Samples.GetValueOrDefault(id)).OfType<SampleLedger>();
}

using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>One iteration's D: the facts that produced it (recorded with it), its samples, and what producing it cost.</summary>
/// <param name="Recorded">Already in the run's stream (a batch recorded before a crash, trained on resume).</param>
internal sealed record Batch(Guid BatchId, IReadOnlyList<object> Facts, IReadOnlyList<TrainingSample> Samples, int SamplesDrawn, int RewardQueries,
    bool Recorded = false);

/// <summary>Where Algorithm 1, step 2 gets D from.</summary>
internal abstract class BatchSource
{
    /// <summary>How many batches this source can give (recorded runs end); null when unbounded.</summary>
    public virtual int? Available => null;

    /// <summary>The DataSource recorded in TrainingBatchAssembled.</summary>
    public abstract DataSource Data(RunSpec spec);

    /// <summary>Called whenever the policy changes: a source may start producing later batches now.</summary>
    public virtual void RunAhead(RunState run, int nextIteration, int iterations, CancellationToken ct) { }

    public abstract Task<Batch> TakeAsync(RunState run, int iteration, CancellationToken ct);
}

/// <summary>
/// Fresh samples from the policy: C responses to each of B/C prompts. With max_staleness K &gt; 0 the batch that
/// will be trained from version j*S (S gradient steps per iteration) is sampled as soon as version j*S - K exists,
/// from that version, while the Learner is still busy: sampling and learning overlap and the lag is at most K (and
/// exactly K once past the start, whenever S divides K), fixed by the schedule rather than by timing.
/// </summary>
internal sealed class FreshBatches(Algorithm1 algorithm) : BatchSource
{
    private readonly Dictionary<int, Task<Batch>> _ahead = [];

    public override DataSource Data(RunSpec spec) => DataSource.Online;

    public override void RunAhead(RunState run, int nextIteration, int iterations, CancellationToken ct)
    {
        var k = run.Spec.Loop.MaxStaleness;
        if (k == 0) return;
        for (var j = nextIteration; j < iterations && (long)j * run.StepsPerIteration - k <= run.Policy!.Version; j++)
            if (!_ahead.ContainsKey(j))
                _ahead[j] = Launch(run, j, ct);
    }

    public override Task<Batch> TakeAsync(RunState run, int iteration, CancellationToken ct) =>
        _ahead.Remove(iteration, out var sampling) ? sampling : Launch(run, iteration, ct);

    /// <summary>Batches are launched in iteration order, so the prompt draws (made here, synchronously) are too. The
    /// policy is the one the schedule names (version j*S - K), not whatever is newest: a resumed run, which knows
    /// every published checkpoint, samples exactly what the uninterrupted run sampled.</summary>
    private Task<Batch> Launch(RunState run, int iteration, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        var prompts = run.DrawPrompts(loop.B / loop.C);
        var policy = run.PublishedAtOrBefore(Math.Max(0, iteration * run.StepsPerIteration - loop.MaxStaleness));
        return algorithm.SampleAndScoreAsync(run, NewId.NextGuid(), RolloutPurpose.Training, iteration, prompts, loop.C, policy, ct);
    }
}

/// <summary>The offline preference dataset D_pref, sampled once from the reference, walked in seeded epochs.</summary>
internal sealed class DatasetBatches(OfflineDataset dataset) : BatchSource
{
    public override DataSource Data(RunSpec spec) => DataSource.Offline;

    public override Task<Batch> TakeAsync(RunState run, int iteration, CancellationToken ct) =>
        Task.FromResult(new Batch(NewId.NextGuid(), [], dataset.NextBatch(run.Spec.Loop.B / run.Spec.Loop.C), 0, 0));
}

/// <summary>Another run's batches, exactly as recorded (same samples, same order): a counterfactual replay.</summary>
internal sealed class RecordedBatches(RecordedRun recorded) : BatchSource
{
    public override int? Available => recorded.Assembled.Count;

    public override DataSource Data(RunSpec spec) => recorded.Started.Spec.Method.Data;

    public override Task<Batch> TakeAsync(RunState run, int iteration, CancellationToken ct) =>
        Task.FromResult(new Batch(NewId.NextGuid(), [], recorded.SamplesOf(recorded.Assembled[iteration]), 0, 0));
}

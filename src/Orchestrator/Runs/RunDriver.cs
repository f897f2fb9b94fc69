using System.Diagnostics;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Storage.Checkpoints;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// One run of Algorithm 1 (<see cref="Algorithm1"/>) through the stage services, from start, replay or resume to how it
/// ended. Each step is a request to a stage service; every fact is recorded before the next step uses it.
/// <para>Where D comes from is a <see cref="BatchSource"/>: fresh samples (possibly sampled ahead, up to
/// max_staleness versions), the offline dataset, or the recorded batches of another run (a counterfactual
/// replay). A run that stopped is resumed from its events by <see cref="ResumeAsync"/>.</para>
/// <para>Checkpoints are kept every checkpoint_every steps and at the end (<see cref="CheckpointRetention"/>); the
/// versions between are the run's transient copies, released as soon as no later batch samples from them.</para>
/// </summary>
public sealed class RunDriver(Stages stages, EventJournal journal, RunLeases leases, ServiceRestarts restarts, ICheckpointStore checkpoints)
{
    private readonly Algorithm1 _algorithm = new(stages, new JournalRecord(journal, restarts, checkpoints));

    public async Task<RunOutcome> RunAsync(RunSpec spec, string transport, IProgress<RunProgress>? progress, CancellationToken ct) =>
        await StartAsync(spec, transport, null, progress, ct);

    /// <summary>Trains <paramref name="spec"/> (another method) on exactly the batches <paramref name="recorded"/> holds,
    /// as a new run linked to its source.</summary>
    public async Task<RunOutcome> ReplayAsync(RunSpec spec, RecordedRun recorded, string transport, IProgress<RunProgress>? progress, CancellationToken ct) =>
        await StartAsync(spec, transport, recorded, progress, ct);

    /// <summary>Continues a run whose processes died, from its event stream and last checkpoint (`preftune resume`).</summary>
    public async Task<RunOutcome> ResumeAsync(RecordedRun recorded, string transport, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var (run, source, pending, evaluationMissing) = ResumePoint.Rebuild(recorded, _algorithm);
        var next = pending?.Iteration ?? recorded.Assembled.Count;
        // refused (RunIsLiveException) while another process still drives the run
        var lease = await leases.AcquireAsync(run.RunId, ct);
        // the oldest version a batch still to come samples from (K behind at most): it must be stored, or trained again
        var sampledFrom = run.PublishedAtOrBefore(Math.Max(0, next * run.StepsPerIteration - run.Spec.Loop.MaxStaleness)).Version;
        var restart = await RestartPointAsync(recorded, sampledFrom, ct);
        var version = run.Policy!.Version;
        await journal.AppendAsync(run.RunId, ct, new RunResumed
        {
            RunId = run.RunId, PolicyVersion = version, NextIteration = next,
            PendingBatch = pending?.Batch.BatchId, ResumedAt = DateTimeOffset.UtcNow, Transport = transport,
            RetrainedFrom = restart.Version < version ? restart.Version : null,
        });
        return await DriveAsync(run, clock, lease, async () =>
        {
            if (restart.Version < version)
                await RetrainAsync(run, recorded, restart, sampledFrom, ct);
            if (evaluationMissing)
                await journal.AppendAsync(run.RunId, ct, await _algorithm.EvaluateAsync(run, ct));
            await _algorithm.TrainAsync(run, source, next, pending?.Batch, progress, ct);
        }, ct);
    }

    private async Task<RunOutcome> StartAsync(RunSpec spec, string transport, RecordedRun? replayOf, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var run = new RunState(NewId.NextGuid(), spec);
        await journal.StartAsync(run.RunId, new RunStarted
        {
            RunId = run.RunId, Spec = spec, StartedAt = DateTimeOffset.UtcNow, Transport = transport,
            ReplayOf = replayOf?.Started.RunId, Environment = RunEnvironment.Current(spec.TorchThreads),
        }, ct);
        var lease = await leases.AcquireAsync(run.RunId, ct);
        return await DriveAsync(run, clock, lease, async () =>
        {
            await _algorithm.InitializeAsync(run, ct);
            progress?.Report(new RunProgress(run.RunId, spec.Label, 0, spec.Loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));
            await _algorithm.TrainAsync(run, await _algorithm.SourceAsync(run, replayOf, ct), 0, null, progress, ct);
        }, ct);
    }

    /// <summary>Runs <paramref name="body"/> holding the run's lease and records how the run ended: RunCompleted,
    /// RunFailed with the stage and reason, or RunStopped when <paramref name="ct"/> was cancelled (a signal).</summary>
    private async Task<RunOutcome> DriveAsync(RunState run, Stopwatch clock, RunLeaseHold lease, Func<Task> body, CancellationToken ct)
    {
        await using var _ = lease;
        try
        {
            await body();
            await journal.AppendAsync(run.RunId, ct, [.. restarts.Drain(run.RunId), new RunCompleted
            {
                RunId = run.RunId,
                GradientSteps = run.Steps,
                PolicyVersion = run.Policy!.Version,
                FinalGoldReward = run.Evaluations.LastOrDefault()?.MeanGoldReward,
                CompletedAt = DateTimeOffset.UtcNow,
            }]);
            await ReleaseAsync(checkpoints, run.RunId, int.MaxValue, ct); // the final checkpoint is kept: no transient copy is needed now
            return run.Outcome("completed", null, clock.Elapsed);
        }
        catch (Exception e) when (ct.IsCancellationRequested && e is not RunStoppedException)
        {
            // The step under way is abandoned: whatever it had not recorded is done again on resume.
            var signal = ShutdownSignals.Name;
            await journal.AppendAsync(run.RunId, CancellationToken.None, [.. restarts.Drain(run.RunId), new RunStopped
            {
                RunId = run.RunId, Reason = signal is null ? "cancelled" : "interrupted", Signal = signal,
                PolicyVersion = run.Policy?.Version ?? 0, StoppedAt = DateTimeOffset.UtcNow,
            }]);
            throw new RunStoppedException(run.RunId, run.Steps, signal, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            var stage = e is StageException s ? s.Stage : EventJournal.IsTransient(e) ? "event-store" : "orchestrator";
            var failed = new RunFailed { RunId = run.RunId, Reason = e.Message, Stage = stage, FailedAt = DateTimeOffset.UtcNow };
            try
            {
                await journal.AppendAsync(run.RunId, CancellationToken.None, failed);
            }
            catch (Exception journalError)
            {
                // The event store itself is down: say both, lose neither.
                return run.Outcome("failed", $"{stage}: {e.Message} (and the failure could not be recorded: {journalError.Message})", clock.Elapsed);
            }
            return run.Outcome("failed", $"{stage}: {e.Message}", clock.Elapsed);
        }
    }

    /// <summary>The newest recorded checkpoint to continue from: its weights and trainer state are still stored (the last
    /// one, unless it was a transient copy that is gone: released, pruned, or lost with an unlogged table in a database
    /// crash), and so are the weights of every version from <paramref name="sampledFrom"/> up to it, which the batches
    /// still to come sample from. Version 0 always qualifies.</summary>
    private async Task<CheckpointRef> RestartPointAsync(RecordedRun recorded, int sampledFrom, CancellationToken ct)
    {
        var weightsStored = new Dictionary<int, bool>();
        foreach (var checkpoint in recorded.Checkpoints)
            weightsStored[checkpoint.Version] = await checkpoints.ContainsAsync(checkpoint.Sha256, ct);
        foreach (var checkpoint in recorded.Checkpoints.Reverse())
            if (weightsStored[checkpoint.Version]
                && (checkpoint.TrainerState is null || await checkpoints.ContainsAsync(checkpoint.TrainerState.Sha256, ct))
                && weightsStored.All(v => v.Key < sampledFrom || v.Key >= checkpoint.Version || v.Value))
                return checkpoint;
        throw new InvalidOperationException($"run {recorded.Started.RunId}: none of its checkpoints is stored any more, not even version 0; "
            + "it cannot be resumed (start it again)");
    }

    /// <summary>Trains the recorded batches after <paramref name="from"/> again, exactly as the run did (same samples and
    /// seeds), checking each resulting hash against the recorded one, so the Learner holds the last recorded version.</summary>
    private async Task RetrainAsync(RunState run, RecordedRun recorded, CheckpointRef from, int sampledFrom, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        run.Policy = await Algorithm1.RetrainAsync(stages, run.Spec, run.RunId, run.Reference!, from, recorded,
            keep: (policy, original) => CheckpointRetention.Keeps(loop, policy.Version, original.Checkpoint.Version, last: false),
            compare: async (policy, original, trained) =>
            {
                if (trained.Checkpoint.Sha256 != original.Checkpoint.Sha256)
                    throw new InvalidOperationException($"run {run.RunId}: re-training from version {from.Version} gave other weights at version "
                        + $"{trained.Checkpoint.Version} ({trained.Checkpoint.Sha256[..12]}, recorded {original.Checkpoint.Sha256[..12]}); "
                        + "the environment differs from the recorded one (see `preftune replay`)");
                await ReleaseAsync(checkpoints, run.RunId, Math.Min(policy.Version, sampledFrom), ct);
            }, ct);
    }

    /// <summary>Drops the run's transient copies below <paramref name="belowVersion"/>. A failure leaves them behind for
    /// `preftune prune`, which is no reason to fail a run.</summary>
    private static async Task ReleaseAsync(ICheckpointStore checkpoints, Guid runId, int belowVersion, CancellationToken ct)
    {
        try
        {
            await checkpoints.ReleaseTransientAsync(runId, belowVersion, ct);
        }
        catch (CheckpointStoreException)
        {
        }
    }

    /// <summary>The driver's record of a run: its event stream, the service restarts seen meanwhile, and its checkpoint store.</summary>
    private sealed class JournalRecord(EventJournal journal, ServiceRestarts restarts, ICheckpointStore checkpoints) : IRunRecord
    {
        public Task AppendAsync(Guid runId, IEnumerable<object> facts, CancellationToken ct) => journal.AppendAsync(runId, facts, ct);
        public IReadOnlyList<object> Drain(Guid runId) => restarts.Drain(runId);
        public Task ReleaseAsync(Guid runId, int belowVersion, CancellationToken ct) => RunDriver.ReleaseAsync(checkpoints, runId, belowVersion, ct);
    }
}

/// <summary>A run was stopped by its owner (a signal, or the caller's token) and recorded as <see cref="RunStopped"/>.</summary>
public sealed class RunStoppedException(Guid runId, int step, string? signal, CancellationToken token)
    : OperationCanceledException($"run {runId} stopped at step {step}{(signal is null ? "" : $" ({signal})")}; continue it with `preftune resume {runId}`", token)
{
    public Guid RunId { get; } = runId;
}

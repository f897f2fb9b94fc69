using System.Diagnostics;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Storage.Checkpoints;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Algorithm 1 of Tajwar et al., one run, top to bottom:
///   for each iteration: draw B/C prompts; build D of B samples (online: C fresh responses per prompt from
///   the current policy; offline: C responses per prompt from D_pref); score them; T passes of
///   minibatches of M, one gradient step each. Evaluate every EvalEvery steps.
/// Each step is a request to a stage service; every fact is recorded before the next step uses it.
/// <para>Where D comes from is a <see cref="BatchSource"/>: fresh samples (possibly sampled ahead, up to
/// max_staleness versions), the offline dataset, or the recorded batches of another run (a counterfactual
/// replay). A run that stopped is resumed from its events by <see cref="ResumeAsync"/>.</para>
/// <para>Checkpoints are kept every checkpoint_every steps and at the end (<see cref="CheckpointRetention"/>); the
/// versions between are the run's transient copies, released as soon as no later batch samples from them.</para>
/// </summary>
public sealed class RunDriver(Stages stages, EventJournal journal, RunLeases leases, ServiceRestarts restarts, ICheckpointStore checkpoints)
{
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
        var (run, source, pending, evaluationMissing) = ResumePoint.Rebuild(recorded, this);
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
                await journal.AppendAsync(run.RunId, ct, await EvaluateAsync(run, ct));
            await TrainAsync(run, source, next, pending?.Batch, progress, ct);
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
            var initialized = await stages.InitializeAsync(new InitializePolicy { RunId = run.RunId, Task = spec.Task, Seed = spec.Seed, TorchThreads = spec.TorchThreads }, ct);
            await journal.AppendAsync(run.RunId, ct, initialized, new CheckpointPublished { RunId = run.RunId, Checkpoint = initialized.Policy });
            run.Reference = initialized.Reference;
            run.Policy = initialized.Policy;
            await journal.AppendAsync(run.RunId, ct, await EvaluateAsync(run, ct));
            progress?.Report(new RunProgress(run.RunId, spec.Label, 0, spec.Loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));

            BatchSource source = replayOf is not null ? new RecordedBatches(replayOf)
                : spec.Method.Data == DataSource.Offline ? new DatasetBatches(await BuildDatasetAsync(run, ct))
                : new FreshBatches(this);
            await TrainAsync(run, source, 0, null, progress, ct);
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
            await ReleaseAsync(run.RunId, int.MaxValue, ct); // the final checkpoint is kept: no transient copy is needed now
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

    /// <summary>Iterations <paramref name="start"/>.. of Algorithm 1; <paramref name="pending"/> is a batch recorded
    /// before a crash whose training was not, trained first (and not recorded twice).</summary>
    private async Task TrainAsync(RunState run, BatchSource source, int start, Batch? pending, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var spec = run.Spec;
        var loop = spec.Loop;
        var iterations = Math.Min(run.Iterations, source.Available ?? int.MaxValue);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            for (var iteration = start; iteration < iterations; iteration++)
            {
                var last = iteration == iterations - 1;
                source.RunAhead(run, iteration + (iteration == start && pending is not null ? 1 : 0), iterations, stop.Token);
                var batch = iteration == start && pending is not null ? pending : await source.TakeAsync(run, iteration, stop.Token);
                if (!batch.Recorded)
                {
                    // Step 2 (and 3): D, |D| = B, as B/C prompt groups of C responses; recorded before anyone learns from it.
                    run.SamplesDrawn += batch.SamplesDrawn;
                    run.RewardQueries += batch.RewardQueries;
                    await journal.AppendAsync(run.RunId, [.. batch.Facts, new TrainingBatchAssembled
                    {
                        RunId = run.RunId, BatchId = batch.BatchId, Iteration = iteration, Source = source.Data(spec),
                        PolicyVersion = run.Policy!.Version, SampleIds = batch.Samples.Select(s => s.Rollout.SampleId).ToList(),
                    }], ct);
                }

                // Step 4: T passes of minibatches of M, one gradient step each.
                var trained = await stages.TrainAsync(new TrainPolicy
                {
                    RunId = run.RunId, BatchId = batch.BatchId, Iteration = iteration, Task = spec.Task, Method = spec.Method, Loop = loop,
                    Policy = run.Policy!, Reference = run.Reference!, Samples = batch.Samples, Seed = SeedFor(spec.Seed, iteration, 3),
                    TorchThreads = spec.TorchThreads,
                    KeepCheckpoint = CheckpointRetention.Keeps(loop, run.Policy!.Version, run.Policy!.Version + run.StepsPerIteration, last),
                }, ct);
                run.Updates.AddRange(trained.Updates);
                run.Policy = trained.Checkpoint;
                source.RunAhead(run, iteration + 1, iterations, stop.Token);
                List<object> learned = [.. trained.Updates, trained, new CheckpointPublished { RunId = run.RunId, Checkpoint = trained.Checkpoint },
                    .. restarts.Drain(run.RunId)];
                try
                {
                    if (EvaluationDue(run, trained.Steps, last))
                        learned.Add(await EvaluateAsync(run, ct));
                }
                finally
                {
                    // The updates were applied: they are recorded (with the evaluation when there is one) even if evaluating failed.
                    await journal.AppendAsync(run.RunId, learned, ct);
                }
                // Recorded: versions older than any later batch samples from (K behind at most) are needed by no one.
                var oldestNeeded = run.PublishedAtOrBefore(Math.Max(0, (iteration + 1) * run.StepsPerIteration - loop.MaxStaleness));
                await ReleaseAsync(run.RunId, Math.Min(oldestNeeded.Version, run.Policy.Version), ct);
                progress?.Report(new RunProgress(run.RunId, spec.Label, run.Steps, loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));
            }
        }
        finally
        {
            await stop.CancelAsync(); // batches sampled ahead that will never be trained
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
        var spec = run.Spec;
        var policy = from;
        foreach (var batch in recorded.Assembled)
        {
            if (!recorded.Trained.TryGetValue(batch.BatchId, out var original) || original.Checkpoint.Version <= from.Version) continue;
            var trained = await stages.TrainAsync(new TrainPolicy
            {
                RunId = run.RunId, BatchId = batch.BatchId, Iteration = batch.Iteration, Task = spec.Task, Method = spec.Method, Loop = spec.Loop,
                Policy = policy, Reference = run.Reference!, Samples = recorded.SamplesOf(batch), Seed = SeedFor(spec.Seed, batch.Iteration, 3),
                TorchThreads = spec.TorchThreads,
                KeepCheckpoint = CheckpointRetention.Keeps(spec.Loop, policy.Version, original.Checkpoint.Version, last: false),
            }, ct);
            if (trained.Checkpoint.Sha256 != original.Checkpoint.Sha256)
                throw new InvalidOperationException($"run {run.RunId}: re-training from version {from.Version} gave other weights at version "
                    + $"{trained.Checkpoint.Version} ({trained.Checkpoint.Sha256[..12]}, recorded {original.Checkpoint.Sha256[..12]}); "
                    + "the environment differs from the recorded one (see `preftune replay`)");
            await ReleaseAsync(run.RunId, Math.Min(policy.Version, sampledFrom), ct);
            policy = trained.Checkpoint;
        }
        run.Policy = policy;
    }

    /// <summary>Drops the run's transient copies below <paramref name="belowVersion"/>. A failure leaves them behind for
    /// `preftune prune`, which is no reason to fail a run.</summary>
    private async Task ReleaseAsync(Guid runId, int belowVersion, CancellationToken ct)
    {
        try
        {
            await checkpoints.ReleaseTransientAsync(runId, belowVersion, ct);
        }
        catch (CheckpointStoreException)
        {
        }
    }

    /// <summary>Evaluate every EvalEvery gradient steps (when the last batch crossed a multiple) and at the end.</summary>
    internal static bool EvaluationDue(RunState run, int stepsJustTaken, bool last) =>
        last || run.Steps / run.Spec.Loop.EvalEvery > (run.Steps - stepsJustTaken) / run.Spec.Loop.EvalEvery;

    /// <summary>D_pref: N responses per prompt from the reference policy, scored once and recorded.</summary>
    private async Task<OfflineDataset> BuildDatasetAsync(RunState run, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        var prompts = run.DrawPrompts(loop.DatasetPrompts);
        var batch = await SampleAndScoreAsync(run, NewId.NextGuid(), RolloutPurpose.Dataset, -1, prompts, loop.DatasetResponses, run.Reference!, ct);
        run.SamplesDrawn += batch.SamplesDrawn;
        run.RewardQueries += batch.RewardQueries;
        await journal.AppendAsync(run.RunId, batch.Facts, ct);
        return new OfflineDataset(batch.Samples, loop.DatasetResponses, new Random(run.Spec.Seed));
    }

    /// <summary>Samples C responses per prompt from <paramref name="policy"/> and scores them. Touches no run state
    /// (it may run while the Learner trains): the caller records the facts and adds the counts.</summary>
    internal async Task<Batch> SampleAndScoreAsync(RunState run, Guid batchId, RolloutPurpose purpose, int iteration,
        IReadOnlyList<Prompt> prompts, int c, CheckpointRef policy, CancellationToken ct)
    {
        var (generated, scored) = await GenerateAndScoreAsync(run, batchId, purpose, iteration, prompts, c, policy, ct);
        var rewards = scored.Scores.ToDictionary(s => s.SampleId, s => s.Reward);
        var samples = generated.Rollouts.Select(r => new TrainingSample { Rollout = r, Reward = rewards[r.SampleId] }).ToList();
        return new Batch(batchId, [generated, scored], samples, generated.Rollouts.Count, scored.RewardQueries);
    }

    private async Task<(RolloutsGenerated, RolloutsScored)> GenerateAndScoreAsync(RunState run, Guid batchId, RolloutPurpose purpose,
        int iteration, IReadOnlyList<Prompt> prompts, int c, CheckpointRef policy, CancellationToken ct, CheckpointRef? reference = null)
    {
        var spec = run.Spec;
        var generated = await stages.SampleAsync(new SampleRollouts
        {
            RunId = run.RunId, BatchId = batchId, Purpose = purpose, Iteration = iteration, Task = spec.Task, Policy = policy,
            Prompts = prompts, ResponsesPerPrompt = c, Temperature = spec.Loop.Temperature,
            Seed = SeedFor(spec.Seed, purpose == RolloutPurpose.Evaluation ? policy.Version : iteration, (int)purpose),
            TorchThreads = spec.TorchThreads,
            Reference = reference,
        }, ct);
        var scored = await stages.ScoreAsync(new ScoreRollouts
        {
            RunId = run.RunId, BatchId = batchId, Purpose = purpose, Task = spec.Task, Rollouts = generated.Rollouts,
        }, ct);
        if (scored.Scores.Count != generated.Rollouts.Count)
            throw new StageException("scorer", $"batch {batchId}: {scored.Scores.Count} scores for {generated.Rollouts.Count} rollouts");
        return (generated, scored);
    }

    /// <summary>Mean gold reward of fresh samples from the current policy. Evaluation rollouts are summarised, not stored:
    /// the caller records the returned fact.</summary>
    private async Task<PolicyEvaluated> EvaluateAsync(RunState run, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        var pool = run.PromptPool;
        var perPrompt = (loop.EvalSamples + pool.Count - 1) / pool.Count;
        var (generated, scored) = await GenerateAndScoreAsync(run, NewId.NextGuid(), RolloutPurpose.Evaluation, -1, pool, perPrompt, run.Policy!, ct, run.Reference);
        run.RewardQueries += scored.RewardQueries;
        var gold = scored.Scores.Select(s => s.GoldReward).ToArray();
        var mean = gold.Average();
        // Monte-Carlo estimates over y ~ pi (token log-probs are at temperature 1):
        // entropy H(pi) = -E[log pi(y)], KL(pi || pi_ref) = E[log pi(y) - log pi_ref(y)].
        var logProbs = generated.Rollouts.Select(r => r.TokenLogProbs.Sum(lp => (double)lp)).ToArray();
        var entropy = -logProbs.Average();
        var kl = generated.Rollouts.Select((r, i) => logProbs[i] - (r.ReferenceLogProb ?? logProbs[i])).Average();
        var evaluated = new PolicyEvaluated
        {
            RunId = run.RunId,
            PolicyVersion = run.Policy!.Version,
            Step = run.Steps,
            Samples = gold.Length,
            MeanGoldReward = mean,
            GoldRewardStd = Math.Sqrt(gold.Sum(g => (g - mean) * (g - mean)) / gold.Length),
            Entropy = entropy,
            Metrics = new Dictionary<string, double>
            {
                ["eval/gold_reward"] = mean,
                ["eval/objective/entropy"] = entropy,
                ["eval/objective/kl"] = kl,
                ["stats/reward_queries"] = run.RewardQueries,
                ["stats/samples_drawn"] = run.SamplesDrawn,
            },
        };
        run.Evaluations.Add(evaluated);
        return evaluated;
    }

    /// <summary>Independent, reproducible seeds per (run seed, iteration, use).</summary>
    public static long SeedFor(int seed, int index, int use) => ((long)seed * 1_000_003L + index) * 16 + use;
}

/// <summary>A run was stopped by its owner (a signal, or the caller's token) and recorded as <see cref="RunStopped"/>.</summary>
public sealed class RunStoppedException(Guid runId, int step, string? signal, CancellationToken token)
    : OperationCanceledException($"run {runId} stopped at step {step}{(signal is null ? "" : $" ({signal})")}; continue it with `preftune resume {runId}`", token)
{
    public Guid RunId { get; } = runId;
}

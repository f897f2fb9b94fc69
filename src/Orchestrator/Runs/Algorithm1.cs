using MassTransit;
using PrefTune.Training.Tasks.Length;
using PrefTune.Messages;
using PrefTune.Sampler;

namespace PrefTune.Orchestrator.Runs;

/// <summary>The four stage calls Algorithm 1 makes, whoever answers them: the services over the bus
/// (<see cref="Stages"/>) or the bench's objects in this process (<see cref="Bench.InProcessStages"/>).</summary>
public interface IStageCalls
{
    Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct);
    Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct);
    Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct);
    Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct);

    /// <summary>An evaluation's aggregates. By default sampled and scored through the two calls above (the bench's objects
    /// in process, and the split bench, which times them apart); over the bus the Sampler asks the Scorer itself.</summary>
    Task<EvaluationSummarized> EvaluateAsync(EvaluatePolicy request, CancellationToken ct) =>
        PolicyEvaluation.EvaluateAsync(request, SampleAsync, ScoreAsync, ct);
}

/// <summary>Where a run's facts go and what is done once they are kept. The driver appends to the event journal and
/// releases transient checkpoints; the bench keeps nothing (<see cref="Unrecorded"/>).</summary>
internal interface IRunRecord
{
    Task AppendAsync(Guid runId, IEnumerable<object> facts, CancellationToken ct);
    /// <summary>Facts the run learned from elsewhere since last asked (services that restarted), recorded with the next step.</summary>
    IReadOnlyList<object> Drain(Guid runId);
    /// <summary>Drops the run's transient checkpoints below <paramref name="belowVersion"/>; never fails the run.</summary>
    Task ReleaseAsync(Guid runId, int belowVersion, CancellationToken ct);
}

/// <summary>The bench's record: facts are dropped, nothing is released (its store keeps what it is given).</summary>
internal sealed class Unrecorded : IRunRecord
{
    public static Unrecorded Instance { get; } = new();
    public Task AppendAsync(Guid runId, IEnumerable<object> facts, CancellationToken ct) => Task.CompletedTask;
    public IReadOnlyList<object> Drain(Guid runId) => [];
    public Task ReleaseAsync(Guid runId, int belowVersion, CancellationToken ct) => Task.CompletedTask;
}

/// <summary>
/// Algorithm 1 of Tajwar et al., written once: for each iteration draw B/C prompts; build D of B samples (online:
/// C fresh responses per prompt from the current policy; offline: C responses per prompt from D_pref); score them;
/// T passes of minibatches of M, one gradient step each; evaluate every EvalEvery steps and at the end. A run
/// (<see cref="RunDriver"/>), its resume and the bench's direct loop all call <see cref="TrainAsync"/>; resume and
/// `preftune replay` re-train recorded batches through <see cref="RetrainAsync"/>. Every request is built here, so
/// the seeds and the order of the calls, on which every checkpoint hash depends, are in one place.
/// </summary>
public sealed class Algorithm1
{
    private readonly IStageCalls stages;
    private readonly IRunRecord record;

    internal Algorithm1(IStageCalls stages, IRunRecord record) => (this.stages, this.record) = (stages, record);

    /// <summary>Initializes the policy (pi_theta = pi_ref after the reference fit), records it and evaluates step 0.</summary>
    internal async Task InitializeAsync(RunState run, CancellationToken ct)
    {
        var spec = run.Spec;
        var initialized = await stages.InitializeAsync(new InitializePolicy { RunId = run.RunId, Task = spec.Task, Seed = spec.Seed, TorchThreads = spec.TorchThreads }, ct);
        await record.AppendAsync(run.RunId, [initialized, new CheckpointPublished { RunId = run.RunId, Checkpoint = initialized.Policy }], ct);
        run.Reference = initialized.Reference;
        run.Policy = initialized.Policy;
        await record.AppendAsync(run.RunId, [await EvaluateAsync(run, ct)], ct);
    }

    /// <summary>Step 2's source for a fresh run: another run's recorded batches, D_pref (built and recorded now), or fresh samples.</summary>
    internal async Task<BatchSource> SourceAsync(RunState run, RecordedRun? replayOf, CancellationToken ct) =>
        replayOf is not null ? new RecordedBatches(replayOf)
        : run.Spec.Method.Data == DataSource.Offline ? new DatasetBatches(await BuildDatasetAsync(run, ct))
        : new FreshBatches(this);

    /// <summary>Iterations <paramref name="start"/>.. of Algorithm 1; <paramref name="pending"/> is a batch recorded
    /// before a crash whose training was not, trained first (and not recorded twice).</summary>
    internal async Task TrainAsync(RunState run, BatchSource source, int start, Batch? pending, IProgress<RunProgress>? progress, CancellationToken ct)
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
                    await record.AppendAsync(run.RunId, [.. batch.Facts, new TrainingBatchAssembled
                    {
                        RunId = run.RunId, BatchId = batch.BatchId, Iteration = iteration, Source = source.Data(spec),
                        PolicyVersion = run.Policy!.Version, SampleIds = batch.Samples.Select(s => s.Rollout.SampleId).ToList(),
                    }], ct);
                }

                // Step 4: T passes of minibatches of M, one gradient step each.
                var trained = await stages.TrainAsync(TrainRequest(spec, run.RunId, batch.BatchId, iteration, run.Policy!, run.Reference!, batch.Samples,
                    CheckpointRetention.Keeps(loop, run.Policy!.Version, run.Policy!.Version + run.StepsPerIteration, last)), ct);
                run.Updates.AddRange(trained.Updates);
                run.Policy = trained.Checkpoint;
                source.RunAhead(run, iteration + 1, iterations, stop.Token);
                List<object> learned = [.. trained.Updates, trained with { Updates = [] }, new CheckpointPublished { RunId = run.RunId, Checkpoint = trained.Checkpoint },
                    .. record.Drain(run.RunId)];
                try
                {
                    if (EvaluationDue(run, trained.Steps, last))
                        learned.Add(await EvaluateAsync(run, ct));
                }
                finally
                {
                    // The updates were applied: they are recorded (with the evaluation when there is one) even if evaluating failed.
                    await record.AppendAsync(run.RunId, learned, ct);
                }
                // Recorded: versions older than any later batch samples from (K behind at most) are needed by no one.
                var oldestNeeded = run.PublishedAtOrBefore(Math.Max(0, (iteration + 1) * run.StepsPerIteration - loop.MaxStaleness));
                await record.ReleaseAsync(run.RunId, Math.Min(oldestNeeded.Version, run.Policy.Version), ct);
                progress?.Report(new RunProgress(run.RunId, spec.Label, run.Steps, loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));
            }
        }
        finally
        {
            await stop.CancelAsync(); // batches sampled ahead that will never be trained
        }
    }

    /// <summary>Trains <paramref name="recorded"/>'s batches whose recorded result is newer than <paramref name="from"/> again,
    /// in order, exactly as the run did (same samples and seeds), as run <paramref name="runId"/>; <paramref name="keep"/> says
    /// whether to keep a version's checkpoint, <paramref name="compare"/> sees each result beside the recorded one (and the
    /// version it was trained from). Returns the last checkpoint.</summary>
    public static async Task<CheckpointRef> RetrainAsync(IStageCalls stages, RunSpec spec, Guid runId, CheckpointRef reference, CheckpointRef from,
        RecordedRun recorded, Func<CheckpointRef, PolicyTrained, bool> keep, Func<CheckpointRef, PolicyTrained, PolicyTrained, Task> compare, CancellationToken ct)
    {
        var policy = from;
        foreach (var batch in recorded.Assembled)
        {
            // not trained: the run stopped before training it (only ever its last batch)
            if (!recorded.Trained.TryGetValue(batch.BatchId, out var original) || original.Checkpoint.Version <= from.Version) continue;
            var trained = await stages.TrainAsync(TrainRequest(spec, runId, batch.BatchId, batch.Iteration, policy, reference,
                recorded.SamplesOf(batch), keep(policy, original)), ct);
            await compare(policy, original, trained);
            policy = trained.Checkpoint;
        }
        return policy;
    }

    /// <summary>Step 4's request: the batch, the policy it trains from, and the iteration's seed (minibatch order).</summary>
    public static TrainPolicy TrainRequest(RunSpec spec, Guid runId, Guid batchId, int iteration, CheckpointRef policy, CheckpointRef reference,
        IReadOnlyList<TrainingSample> samples, bool keepCheckpoint) => new()
    {
        RunId = runId, BatchId = batchId, Iteration = iteration, Task = spec.Task, Method = spec.Method, Loop = spec.Loop,
        Policy = policy, Reference = reference, Samples = samples, Seed = SeedFor(spec.Seed, iteration, 3),
        TorchThreads = spec.TorchThreads, KeepCheckpoint = keepCheckpoint, Optimizer = spec.Optimizer,
    };

    /// <summary>Evaluate every EvalEvery gradient steps (when the last batch crossed a multiple) and at the end.</summary>
    internal static bool EvaluationDue(RunState run, int stepsJustTaken, bool last) =>
        last || run.Steps / run.Spec.Loop.EvalEvery > (run.Steps - stepsJustTaken) / run.Spec.Loop.EvalEvery;

    /// <summary>Independent, reproducible seeds per (run seed, iteration, use).</summary>
    public static long SeedFor(int seed, int index, int use) => ((long)seed * 1_000_003L + index) * 16 + use;

    /// <summary>D_pref: N responses per prompt from the reference policy, scored once and recorded; or, when the task names
    /// a pairs file, its rows (<see cref="DatasetFromFileAsync"/>).</summary>
    private async Task<OfflineDataset> BuildDatasetAsync(RunState run, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        var file = Training.Tasks.PreferenceTasks.PairsFile(run.Spec.Task);
        var fromFile = file is not null;
        var batch = fromFile
            ? await DatasetFromFileAsync(run, file!, ct)
            : await SampleAndScoreAsync(run, NewId.NextGuid(), RolloutPurpose.Dataset, -1, run.DrawPrompts(loop.DatasetPrompts), loop.DatasetResponses, run.Reference!, ct);
        run.SamplesDrawn += batch.SamplesDrawn;
        run.RewardQueries += batch.RewardQueries;
        await record.AppendAsync(run.RunId, batch.Facts, ct);
        // a file's groups are its rows, whatever loop.dataset_* say (an experiment file sets them from the file; a spec made
        // in code need not)
        return new OfflineDataset(batch.Samples, fromFile ? PreferenceRollouts.ResponsesPerRow : loop.DatasetResponses, new Random(run.Spec.Seed));
    }

    /// <summary>
    /// D_pref read from a pairs file, recorded as the sampled one is (RolloutsGenerated and RolloutsScored, purpose Dataset),
    /// so replay, resume and show read it unchanged: the rewards are the file's scores, the gold rewards the Scorer's
    /// measure of each response (the task's rule, or its gold reward model). No prompt is drawn and no reward model
    /// queried; the responses count as samples drawn, as the sampled D_pref's do (resume counts every recorded rollout).
    /// A task that holds prompts out for evaluation leaves their rows out.
    /// </summary>
    private async Task<Batch> DatasetFromFileAsync(RunState run, string file, CancellationToken ct)
    {
        var batchId = NewId.NextGuid();
        var samples = await Training.Tasks.Length.PreferenceRollouts.ReadAsync(file, run.Spec.Task.Model!, batchId, prompt => !run.Task.IsHeldOut(prompt), ct);
        var generated = new RolloutsGenerated
        {
            RunId = run.RunId, BatchId = batchId, Purpose = RolloutPurpose.Dataset, Iteration = -1, PolicyVersion = run.Reference!.Version,
            Rollouts = samples.Select(s => s.Rollout).ToList(),
        };
        var measured = await stages.ScoreAsync(ScoreRollouts.For(generated, run.Spec.Task, null, run.Spec.TorchThreads), ct);
        var gold = measured.Scores.ToDictionary(s => s.SampleId, s => s.GoldReward);
        if (gold.Count != samples.Count)
            throw new StageException("scorer", $"batch {batchId}: {gold.Count} scores for {samples.Count} rollouts");
        var scored = new RolloutsScored
        {
            RunId = run.RunId, BatchId = batchId, Purpose = RolloutPurpose.Dataset, RewardQueries = 0,
            Scores = samples.Select(s => new RolloutScore { SampleId = s.Rollout.SampleId, Reward = s.Reward, GoldReward = gold[s.Rollout.SampleId] }).ToList(),
        };
        return new Batch(batchId, [generated, scored], samples, samples.Count, 0);
    }

    /// <summary>Samples C responses per prompt from <paramref name="policy"/> and scores them. Touches no run state
    /// (it may run while the Learner trains): the caller records the facts and adds the counts.</summary>
    internal async Task<Batch> SampleAndScoreAsync(RunState run, Guid batchId, RolloutPurpose purpose, int iteration,
        IReadOnlyList<Prompt> prompts, int c, CheckpointRef policy, CancellationToken ct)
    {
        var spec = run.Spec;
        var generated = await stages.SampleAsync(SampleRequest(run, batchId, purpose, iteration, prompts, c, policy), ct);
        var scored = await stages.ScoreAsync(ScoreRollouts.For(generated, spec.Task, spec.RewardModel, spec.TorchThreads), ct);
        if (scored.Scores.Count != generated.Rollouts.Count)
            throw new StageException("scorer", $"batch {batchId}: {scored.Scores.Count} scores for {generated.Rollouts.Count} rollouts");
        var rewards = scored.Scores.ToDictionary(s => s.SampleId, s => s.Reward);
        var samples = generated.Rollouts.Select(r => new TrainingSample { Rollout = r, Reward = rewards[r.SampleId] }).ToList();
        return new Batch(batchId, [generated, scored], samples, generated.Rollouts.Count, scored.RewardQueries);
    }

    private static SampleRollouts SampleRequest(RunState run, Guid batchId, RolloutPurpose purpose, int iteration,
        IReadOnlyList<Prompt> prompts, int c, CheckpointRef policy, CheckpointRef? reference = null) => new()
    {
        RunId = run.RunId, BatchId = batchId, Purpose = purpose, Iteration = iteration, Task = run.Spec.Task, Policy = policy,
        Prompts = prompts, ResponsesPerPrompt = c, Temperature = run.Spec.Loop.Temperature,
        Seed = SeedFor(run.Spec.Seed, purpose == RolloutPurpose.Evaluation ? policy.Version : iteration, (int)purpose),
        TorchThreads = run.Spec.TorchThreads,
        Reference = reference,
    };

    /// <summary>Mean gold reward of fresh samples from the current policy, measured in one hop by the Sampler and the
    /// Scorer (<see cref="EvaluatePolicy"/>): only the aggregates come back. The caller records the returned fact.</summary>
    internal async Task<PolicyEvaluated> EvaluateAsync(RunState run, CancellationToken ct)
    {
        var spec = run.Spec;
        var loop = spec.Loop;
        var pool = run.EvaluationPool;
        var perPrompt = (loop.EvalSamples + pool.Count - 1) / pool.Count;
        var summary = await stages.EvaluateAsync(new EvaluatePolicy
        {
            Sampling = SampleRequest(run, NewId.NextGuid(), RolloutPurpose.Evaluation, -1, pool, perPrompt, run.Policy!, run.Reference),
            RewardModel = spec.RewardModel,
            // the reference's seed is evaluation 0's (its version's): the same responses every time, and at step 0 the policy's
            ReferenceSampling = run.Task.ComparesWithReference
                ? SampleRequest(run, NewId.NextGuid(), RolloutPurpose.Evaluation, -1, pool, perPrompt, run.Reference!, run.Reference)
                : null,
        }, ct);
        run.RewardQueries += summary.RewardQueries;
        // The run's running totals after the evaluation's own three (the order metrics.jsonl has always had them in).
        var metrics = summary.Metrics.Take(3).ToDictionary();
        metrics["stats/reward_queries"] = run.RewardQueries;
        metrics["stats/samples_drawn"] = run.SamplesDrawn;
        foreach (var (name, value) in summary.Metrics.Skip(3)) metrics[name] = value;
        var evaluated = new PolicyEvaluated
        {
            RunId = run.RunId,
            PolicyVersion = run.Policy!.Version,
            Step = run.Steps,
            Samples = summary.Samples,
            MeanGoldReward = summary.MeanGoldReward,
            GoldRewardStd = summary.GoldRewardStd,
            Entropy = summary.Entropy,
            Metrics = metrics,
        };
        run.Evaluations.Add(evaluated);
        return evaluated;
    }
}

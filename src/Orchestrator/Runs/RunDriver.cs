using System.Diagnostics;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Training.Tasks;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Algorithm 1 of Tajwar et al., one run, top to bottom:
///   for each iteration: draw B/C prompts; build D of B samples (online: C fresh responses per prompt from
///   the current policy; offline: C responses per prompt from D_pref); score them; T passes of
///   minibatches of M, one gradient step each. Evaluate every EvalEvery steps.
/// Each step is a request to a stage service; every fact is recorded before the next step uses it.
/// </summary>
public sealed class RunDriver(Stages stages, EventJournal journal)
{
    public async Task<RunOutcome> RunAsync(RunSpec spec, string transport, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var runId = NewId.NextGuid();
        var clock = Stopwatch.StartNew();
        var run = new RunState(runId, spec);
        await journal.StartAsync(runId, new RunStarted { RunId = runId, Spec = spec, StartedAt = DateTimeOffset.UtcNow, Transport = transport }, ct);
        try
        {
            await TrainAsync(run, progress, ct);
            var completed = new RunCompleted
            {
                RunId = runId,
                GradientSteps = run.Steps,
                PolicyVersion = run.Policy!.Version,
                FinalGoldReward = run.Evaluations.LastOrDefault()?.MeanGoldReward,
                CompletedAt = DateTimeOffset.UtcNow,
            };
            await journal.AppendAsync(runId, ct, completed);
            return run.Outcome("completed", null, clock.Elapsed);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            var stage = e is StageException s ? s.Stage : "orchestrator";
            var failed = new RunFailed { RunId = runId, Reason = e.Message, Stage = stage, FailedAt = DateTimeOffset.UtcNow };
            try
            {
                await journal.AppendAsync(runId, CancellationToken.None, failed);
            }
            catch (Exception journalError)
            {
                // The event store itself is down: say both, lose neither.
                return run.Outcome("failed", $"{stage}: {e.Message} (and the failure could not be recorded: {journalError.Message})", clock.Elapsed);
            }
            return run.Outcome("failed", $"{stage}: {e.Message}", clock.Elapsed);
        }
    }

    private async Task TrainAsync(RunState run, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var spec = run.Spec;
        var loop = spec.Loop;
        var initialized = await stages.InitializeAsync(new InitializePolicy { RunId = run.RunId, Task = spec.Task, Seed = spec.Seed, TorchThreads = spec.TorchThreads }, ct);
        await journal.AppendAsync(run.RunId, ct, initialized, new CheckpointPublished { RunId = run.RunId, Checkpoint = initialized.Policy });
        run.Reference = initialized.Reference;
        run.Policy = initialized.Policy;
        await journal.AppendAsync(run.RunId, ct, await EvaluateAsync(run, ct));
        progress?.Report(new RunProgress(run.RunId, spec.Label, 0, loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));

        var dataset = spec.Method.Data == DataSource.Offline ? await BuildDatasetAsync(run, ct) : null;
        var stepsPerIteration = loop.T * loop.B / loop.M;
        var iterations = (loop.GradientSteps + stepsPerIteration - 1) / stepsPerIteration;
        for (var iteration = 0; iteration < iterations; iteration++)
        {
            // Step 2 (and 3): D, |D| = B, as B/C prompt groups of C responses; recorded before anyone learns from it.
            var batchId = NewId.NextGuid();
            var facts = new List<object>();
            IReadOnlyList<TrainingSample> samples;
            if (dataset is null)
            {
                var (generated, scored, fresh) = await SampleAndScoreAsync(run, batchId, RolloutPurpose.Training, iteration, run.DrawPrompts(loop.B / loop.C), loop.C, ct);
                facts.Add(generated);
                facts.Add(scored);
                samples = fresh;
            }
            else
            {
                samples = dataset.NextBatch(loop.B / loop.C);
            }
            facts.Add(new TrainingBatchAssembled
            {
                RunId = run.RunId, BatchId = batchId, Iteration = iteration, Source = spec.Method.Data,
                PolicyVersion = run.Policy.Version, SampleIds = samples.Select(s => s.Rollout.SampleId).ToList(),
            });
            await journal.AppendAsync(run.RunId, facts, ct);

            // Step 4: T passes of minibatches of M, one gradient step each.
            var trained = await stages.TrainAsync(new TrainPolicy
            {
                RunId = run.RunId, BatchId = batchId, Iteration = iteration, Task = spec.Task, Method = spec.Method, Loop = loop,
                Policy = run.Policy, Reference = run.Reference, Samples = samples, Seed = SeedFor(spec.Seed, iteration, 3),
                TorchThreads = spec.TorchThreads,
            }, ct);
            run.Updates.AddRange(trained.Updates);
            run.Policy = trained.Checkpoint;
            List<object> learned = [.. trained.Updates, trained, new CheckpointPublished { RunId = run.RunId, Checkpoint = trained.Checkpoint }];

            var last = iteration == iterations - 1;
            try
            {
                if (last || run.Steps / loop.EvalEvery > (run.Steps - trained.Steps) / loop.EvalEvery)
                    learned.Add(await EvaluateAsync(run, ct));
            }
            finally
            {
                // The updates were applied: they are recorded (with the evaluation when there is one) even if evaluating failed.
                await journal.AppendAsync(run.RunId, learned, ct);
            }
            progress?.Report(new RunProgress(run.RunId, spec.Label, run.Steps, loop.GradientSteps, run.Evaluations[^1].MeanGoldReward));
        }
    }

    /// <summary>D_pref: N responses per prompt from the reference policy, scored once and recorded.</summary>
    private async Task<OfflineDataset> BuildDatasetAsync(RunState run, CancellationToken ct)
    {
        var loop = run.Spec.Loop;
        var prompts = run.DrawPrompts(loop.DatasetPrompts);
        var (generated, scored, samples) = await SampleAndScoreAsync(run, NewId.NextGuid(), RolloutPurpose.Dataset, -1, prompts, loop.DatasetResponses, ct, run.Reference);
        await journal.AppendAsync(run.RunId, ct, generated, scored);
        return new OfflineDataset(samples, loop.DatasetResponses, new Random(run.Spec.Seed));
    }

    /// <summary>Samples C responses per prompt and scores them; returns both facts (for the caller to record) and the training samples.</summary>
    private async Task<(RolloutsGenerated, RolloutsScored, IReadOnlyList<TrainingSample>)> SampleAndScoreAsync(RunState run, Guid batchId, RolloutPurpose purpose,
        int iteration, IReadOnlyList<Prompt> prompts, int c, CancellationToken ct, Messages.CheckpointRef? policy = null)
    {
        var (generated, scored) = await GenerateAndScoreAsync(run, batchId, purpose, iteration, prompts, c, policy ?? run.Policy!, ct);
        run.SamplesDrawn += generated.Rollouts.Count;
        var rewards = scored.Scores.ToDictionary(s => s.SampleId, s => s.Reward);
        return (generated, scored, generated.Rollouts.Select(r => new TrainingSample { Rollout = r, Reward = rewards[r.SampleId] }).ToList());
    }

    private async Task<(RolloutsGenerated, RolloutsScored)> GenerateAndScoreAsync(RunState run, Guid batchId, RolloutPurpose purpose,
        int iteration, IReadOnlyList<Prompt> prompts, int c, Messages.CheckpointRef policy, CancellationToken ct, Messages.CheckpointRef? reference = null)
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
        run.RewardQueries += scored.RewardQueries;
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
    internal static long SeedFor(int seed, int index, int use) => ((long)seed * 1_000_003L + index) * 16 + use;

    /// <summary>The run's mutable progress, owned by this driver alone.</summary>
    private sealed class RunState(Guid runId, RunSpec spec)
    {
        private readonly Random _promptDraws = new(spec.Seed);
        public Guid RunId { get; } = runId;
        public RunSpec Spec { get; } = spec;
        public IReadOnlyList<Prompt> PromptPool { get; } = PreferenceTasks.Create(spec.Task).PromptPool(spec.Seed);
        public Messages.CheckpointRef? Reference { get; set; }
        public Messages.CheckpointRef? Policy { get; set; }
        public List<PolicyEvaluated> Evaluations { get; } = [];
        public List<UpdateApplied> Updates { get; } = [];
        public int SamplesDrawn { get; set; }
        /// <summary>Reward-model queries so far (training, dataset and evaluation batches).</summary>
        public int RewardQueries { get; set; }
        public int Steps => Updates.Count;

        /// <summary>Step 1: B/C prompts drawn uniformly (with replacement) from the task's pool.</summary>
        public IReadOnlyList<Prompt> DrawPrompts(int count) =>
            Enumerable.Range(0, count).Select(_ => PromptPool[_promptDraws.Next(PromptPool.Count)]).ToList();

        public RunOutcome Outcome(string status, string? reason, TimeSpan elapsed) => new()
        {
            RunId = RunId, Spec = Spec, Status = status, FailureReason = reason, Evaluations = Evaluations,
            Updates = Updates, SamplesDrawn = SamplesDrawn, GradientSteps = Steps, Elapsed = elapsed,
        };
    }
}

using System.Diagnostics;
using PrefTune.Learner;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training.Tasks;

namespace PrefTune.Orchestrator.Bench;

/// <summary>
/// The model work of a run with no messaging and no event store: the same sampling, scoring and
/// gradient steps, called directly. The pipeline's time minus this is what the services cost.
/// </summary>
public static class DirectLoop
{
    public static TimeSpan Run(RunSpec spec)
    {
        var clock = Stopwatch.StartNew();
        var loop = spec.Loop;
        var task = PreferenceTasks.Create(spec.Task);
        var pool = task.PromptPool(spec.Seed);
        var draws = new Random(spec.Seed);
        var (learner, weights, _) = RunLearner.Initialize(spec.Task, spec.Seed);
        using (learner)
        {
            var sampler = task.CreatePolicy(0);
            using (sampler)
            {
                sampler.LoadWeights(weights);
                Evaluate(task, sampler, pool, loop);
                List<TrainingSample>? dataset = null;
                if (spec.Method.Data == DataSource.Offline)
                    dataset = Score(task, task.Generate(sampler, Draw(pool, draws, loop.DatasetPrompts), loop.DatasetResponses, loop.Temperature, 1, 0, Guid.NewGuid()));
                var offline = dataset is null ? null : new OfflineDataset(dataset, loop.DatasetResponses, new Random(spec.Seed));
                var stepsPerIteration = loop.T * loop.B / loop.M;
                var reference = new CheckpointRef { Version = 0, Sha256 = learner.ReferenceHash, Uri = "memory:", Bytes = 0 };
                for (var iteration = 0; iteration < (loop.GradientSteps + stepsPerIteration - 1) / stepsPerIteration; iteration++)
                {
                    var samples = offline?.NextBatch(loop.B / loop.C)
                        ?? Score(task, task.Generate(sampler, Draw(pool, draws, loop.B / loop.C), loop.C, loop.Temperature, iteration, learner.Version, Guid.NewGuid()));
                    learner.Train(new TrainPolicy
                    {
                        RunId = Guid.Empty, BatchId = Guid.NewGuid(), Iteration = iteration, Task = spec.Task, Method = spec.Method, Loop = loop,
                        Policy = reference, Reference = reference, Samples = samples, Seed = iteration,
                    });
                    sampler.LoadWeights(learner.SaveWeights());
                }
                Evaluate(task, sampler, pool, loop);
            }
        }
        return clock.Elapsed;
    }

    private static void Evaluate(IPreferenceTask task, Training.Policies.PolicyModel policy, IReadOnlyList<Prompt> pool, LoopSpec loop) =>
        Score(task, task.Generate(policy, pool, (loop.EvalSamples + pool.Count - 1) / pool.Count, loop.Temperature, 7, 0, Guid.NewGuid()));

    private static List<Prompt> Draw(IReadOnlyList<Prompt> pool, Random draws, int count) =>
        Enumerable.Range(0, count).Select(_ => pool[draws.Next(pool.Count)]).ToList();

    private static List<TrainingSample> Score(IPreferenceTask task, IReadOnlyList<Rollout> rollouts) =>
        rollouts.Select(r => new TrainingSample { Rollout = r, Reward = task.GoldReward(r) }).ToList();
}

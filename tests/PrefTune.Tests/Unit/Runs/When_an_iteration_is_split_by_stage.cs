using PrefTune.Messages;
using PrefTune.Orchestrator.Bench;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Runs;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>
/// `bench --split` attributes each stage call's time to the right part. The real Algorithm 1 runs on fake stage calls
/// that advance a fake clock by a different amount per call kind (no sleeps, no real work), so every part's seconds
/// are known exactly: a call counted under the wrong purpose, or initialization leaking into the iterations, shows.
/// </summary>
public sealed class When_an_iteration_is_split_by_stage
{
    // Distinct powers of two: any misattribution changes a total to a value no correct split can give.
    private const long Initialize = 1024, TrainingSample = 1, TrainingScore = 2, Learn = 4, EvaluationSample = 8, EvaluationScore = 16;
    private const long TicksPerSecond = 10;

    private sealed class FakeStages : IStageCalls
    {
        public long Now;
        private int _version;

        private static CheckpointRef Checkpoint(int version) => new() { Version = version, Sha256 = $"v{version}", Uri = $"memory:v{version}", Bytes = 1 };

        public Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct)
        {
            Now += Initialize;
            return Task.FromResult(new PolicyInitialized { RunId = request.RunId, Reference = Checkpoint(0), Policy = Checkpoint(0) });
        }

        public Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct)
        {
            Now += request.Purpose == RolloutPurpose.Evaluation ? EvaluationSample : TrainingSample;
            var rollouts = request.Prompts.SelectMany((p, g) => Enumerable.Range(0, request.ResponsesPerPrompt).Select(_ => new Rollout
            {
                SampleId = Guid.NewGuid(), PromptId = p.PromptId, Group = g, PromptTokens = p.Tokens, ResponseTokens = [0],
                TokenLogProbs = [-1f], PolicyVersion = request.Policy.Version,
            })).ToList();
            return Task.FromResult(new RolloutsGenerated
            {
                RunId = request.RunId, BatchId = request.BatchId, Purpose = request.Purpose, Iteration = request.Iteration,
                PolicyVersion = request.Policy.Version, Rollouts = rollouts,
            });
        }

        public Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct)
        {
            Now += request.Purpose == RolloutPurpose.Evaluation ? EvaluationScore : TrainingScore;
            return Task.FromResult(new RolloutsScored
            {
                RunId = request.RunId, BatchId = request.BatchId, Purpose = request.Purpose,
                Scores = request.Rollouts.Select(r => new RolloutScore { SampleId = r.SampleId, Reward = 0, GoldReward = 0 }).ToList(),
            });
        }

        public Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct)
        {
            Now += Learn;
            var steps = request.Loop.T * request.Loop.B / request.Loop.M;
            var updates = Enumerable.Range(0, steps).Select(m => new UpdateApplied
            {
                RunId = request.RunId, BatchId = request.BatchId, Step = _version + 1, Pass = 0, Minibatch = m,
                VersionBefore = _version, VersionAfter = ++_version, SampleIds = [], Loss = 0,
            }).ToList();
            return Task.FromResult(new PolicyTrained
            {
                RunId = request.RunId, BatchId = request.BatchId, Steps = steps, Checkpoint = Checkpoint(_version), Updates = updates,
            });
        }
    }

    [Fact]
    public async Task Training_and_evaluation_calls_are_counted_apart_and_the_parts_add_up_to_the_wall_clock()
    {
        var dpo = ExperimentFile.Load(Path.Combine(RepositoryRoot(), "experiments", "bandit-peak70.yaml")).Runs.First(r => r.Label == "dpo (online)");
        // 6 iterations of one gradient step each, evaluated at steps 2, 4 and 6 (the step-0 evaluation belongs to initialization).
        var spec = dpo with { Loop = dpo.Loop with { GradientSteps = 6, EvalEvery = 2, T = 1, M = dpo.Loop.B, MaxStaleness = 0 } };
        var stages = new FakeStages();

        var split = await StageSplitBench.MeasureAsync(spec, stages, CancellationToken.None, () => stages.Now, TicksPerSecond);

        Assert.Equal(6, split.Iterations);
        Assert.Equal(6, split.Totals.Calls[StageKind.TrainingSampling]);
        Assert.Equal(6, split.Totals.Calls[StageKind.TrainingScoring]);
        Assert.Equal(6, split.Totals.Calls[StageKind.Learning]);
        Assert.Equal(3, split.Totals.Calls[StageKind.EvaluationSampling]);
        Assert.Equal(3, split.Totals.Calls[StageKind.EvaluationScoring]);
        Assert.Equal(0, split.Totals.Calls[StageKind.Initialize]);
        Assert.Equal(0, split.Totals.Calls[StageKind.DatasetSampling]);

        Assert.Equal(6 * TrainingSample / (double)TicksPerSecond, split.Sampling, 9);
        Assert.Equal(6 * TrainingScore / (double)TicksPerSecond, split.Scoring, 9);
        Assert.Equal(6 * Learn / (double)TicksPerSecond, split.Learning, 9);
        Assert.Equal(3 * (EvaluationSample + EvaluationScore) / (double)TicksPerSecond, split.Evaluation, 9);
        // The fake clock moves only inside stage calls, so the loop's own bookkeeping takes none of it.
        Assert.Equal(0, split.Other, 9);
        Assert.Equal(1, split.Parts.Sum(p => split.Share(p.Seconds)), 9);
    }

    [Fact]
    public async Task Each_call_kind_goes_to_its_own_total()
    {
        var stages = new FakeStages();
        var timed = new TimedStages(stages, () => stages.Now, TicksPerSecond);
        var task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() };
        var policy = new CheckpointRef { Version = 0, Sha256 = "v0", Uri = "memory:v0", Bytes = 1 };
        foreach (var purpose in new[] { RolloutPurpose.Training, RolloutPurpose.Evaluation, RolloutPurpose.Evaluation, RolloutPurpose.Dataset })
        {
            var generated = await timed.SampleAsync(new SampleRollouts
            {
                RunId = Guid.Empty, BatchId = Guid.Empty, Purpose = purpose, Iteration = 0, Task = task, Policy = policy,
                Prompts = [], ResponsesPerPrompt = 1, Seed = 0,
            }, CancellationToken.None);
            await timed.ScoreAsync(new ScoreRollouts { RunId = Guid.Empty, BatchId = Guid.Empty, Purpose = purpose, Task = task, Rollouts = generated.Rollouts }, CancellationToken.None);
        }

        var totals = timed.Snapshot();
        Assert.Equal(TrainingSample / (double)TicksPerSecond, totals.Seconds[StageKind.TrainingSampling], 9);
        Assert.Equal(TrainingScore / (double)TicksPerSecond, totals.Seconds[StageKind.TrainingScoring], 9);
        Assert.Equal(2 * EvaluationSample / (double)TicksPerSecond, totals.Seconds[StageKind.EvaluationSampling], 9);
        Assert.Equal(2 * EvaluationScore / (double)TicksPerSecond, totals.Seconds[StageKind.EvaluationScoring], 9);
        // The fake charges D_pref as training-priced calls; what matters is that they are not counted as training.
        Assert.Equal(1, totals.Calls[StageKind.DatasetSampling]);
        Assert.Equal(1, totals.Calls[StageKind.DatasetScoring]);
        Assert.Equal(1, totals.Calls[StageKind.TrainingSampling]);
        Assert.Equal(0, totals.Calls[StageKind.Learning]);
    }
}

using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Methods;
using PrefTune.Training.Optimization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>DPO on tiny-llama end to end: SequenceLogProbs, pi_ref once per batch, the unchanged Dpo loss, accumulation, AdamW.</summary>
public class When_a_language_model_takes_a_dpo_step
{
    // One prompt group of C = 2: reward 1 for the first response (chosen), 0 for the second (rejected).
    private static readonly SequenceSample[] Group =
    [
        new(new Guid(1, 0, 0, new byte[8]), new TokenSequence([1, 17, 33], [40, 8, 71, 9]), 1, [-1f, -1f, -1f, -1f]),
        new(new Guid(2, 0, 0, new byte[8]), new TokenSequence([1, 17, 33], [12, 50, 3]), 0, [-1f, -1f, -1f]),
    ];

    private static float[] LogProbs(LanguageModel model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return SequenceLogProbs.Sum(model, Group.Select(s => s.Sequence).ToList()).data<float>().ToArray();
    }

    [Fact]
    public void Chosen_goes_up_and_rejected_goes_down()
    {
        using var policy = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        using var frozen = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        var reference = ReferenceLogProbs.Compute(frozen, Group.Select(s => (s.Id, s.Sequence)).ToList(), microBatch: 1);
        using var optimizer = new PolicyOptimizer(policy.parameters(), new OptimizerSettings(), learningRate: 1e-3, totalSteps: 10);
        var before = LogProbs(policy);

        using var scope = NewDisposeScope();
        var (loss, step) = SequenceTraining.Step(policy, optimizer, new Dpo(beta: 0.1, threshold: 0), reference, Group, c: 2, microBatch: 1);
        // pi = pi_ref before the step: h = 0, so L = -log sigmoid(0) = ln 2 (TRL's check), with one pair formed.
        Assert.Equal(Math.Log(2), loss.Loss, 5);
        Assert.Equal(1, loss.Metrics["pairs"]);
        Assert.Equal([(0, 0, 1)], loss.Pairs!.Indices);
        Assert.True(step.GradNorm > 0);
        var after = LogProbs(policy);
        Assert.True(after[0] > before[0], $"chosen log-prob {before[0]} -> {after[0]} did not rise");
        Assert.True(after[1] < before[1], $"rejected log-prob {before[1]} -> {after[1]} did not fall");
    }

    [Fact]
    public void Samples_must_carry_a_sampling_log_prob_per_response_token()
    {
        using var policy = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        var reference = ReferenceLogProbs.Compute(policy, Group.Select(s => (s.Id, s.Sequence)).ToList(), microBatch: 2);
        using var optimizer = new PolicyOptimizer(policy.parameters(), new OptimizerSettings(), learningRate: 1e-5, totalSteps: 1);
        var stopped = new GeneratedResponse(0, 0, [12, 50], [-0.5f, -0.25f], FinishReason.Stop, StopId: 3, StopLogProb: -2f);
        var sample = SequenceSample.Of(Group[1].Id, [1, 17, 33], stopped, 0);
        Assert.Equal(Group[1].Sequence.Response, sample.Sequence.Response);               // [12, 50] + stop 3
        Assert.Equal([-0.5f, -0.25f, -2f], sample.SamplingLogProbs);
        var error = Assert.Throws<ArgumentException>(() => SequenceTraining.Step(policy, optimizer, new Dpo(0.1, 0), reference,
            [Group[0], sample with { SamplingLogProbs = stopped.LogProbs }], c: 2, microBatch: null));
        Assert.Contains("sample 1", error.Message);
        Assert.Contains("2 sampling log-probs for 3 response tokens", error.Message);
        Assert.Equal(0, optimizer.StepsTaken);
    }

    [Fact]
    public void Steps_leave_no_live_tensors_behind()
    {
        using var policy = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        using var frozen = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        var reference = ReferenceLogProbs.Compute(frozen, Group.Select(s => (s.Id, s.Sequence)).ToList(), microBatch: 2);
        using var optimizer = new PolicyOptimizer(policy.parameters(),
            new OptimizerSettings { WeightDecay = 0.01, Schedule = ScheduleKind.Cosine, WarmupSteps = 2 }, learningRate: 1e-3, totalSteps: 30);
        var loss = new Dpo(beta: 0.1, threshold: 0);
        void Step()
        {
            using var scope = NewDisposeScope();
            SequenceTraining.Step(policy, optimizer, loss, reference, Group, c: 2, microBatch: 1);
        }

        for (var i = 0; i < 3; i++) Step();   // warm-up: AdamW's state and the gradients now exist
        DisposeScopeManager.Statistics.Reset();
        for (var i = 0; i < 5; i++) Step();
        var afterFive = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 20; i++) Step();
        Assert.Equal(afterFive, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

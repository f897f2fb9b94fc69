using PrefTune.Training.Methods;
using PrefTune.Training.Optimization;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>One sample of a batch as the language-model learner trains on it.</summary>
/// <param name="Id">The rollout's sample id: pi_ref's log-probs are looked up by it.</param>
/// <param name="SamplingLogProbs">log pi_old(y_t | x, y_&lt;t) of the response tokens, as the sampler reported them.</param>
public sealed record SequenceSample(Guid Id, TokenSequence Sequence, double Reward, float[] SamplingLogProbs)
{
    /// <summary>A sampled response as a training sample: the stop token, if it stopped, and its log-prob included.</summary>
    public static SequenceSample Of(Guid id, int[] prompt, GeneratedResponse response, double reward) =>
        new(id, TokenSequence.Of(prompt, response), reward, response.StopLogProb is { } stop ? [.. response.LogProbs, stop] : response.LogProbs);
}

/// <summary>
/// One optimizer step of the language-model learner on a minibatch of M = G x C samples, group-major: the method's
/// loss, unchanged, on the [G, C] sequence log-probs, accumulated over micro-batches, then clip, schedule, AdamW.
/// </summary>
public static class SequenceTraining
{
    public static (AccumulatedLoss Loss, OptimizerStep Step) Step(LanguageModel policy, PolicyOptimizer optimizer, IPreferenceLoss loss,
        ReferenceLogProbs reference, IReadOnlyList<SequenceSample> samples, int c, int? microBatch, int padId = 0)
    {
        if (c < 1 || samples.Count % c != 0)
            throw new ArgumentException($"{samples.Count} samples do not form whole prompt groups of C = {c}", nameof(samples));
        // The importance ratio pi / pi_old is taken over the same tokens on both sides: a stop token scored by the
        // policy but missing from the sampler's log-probs would bias it silently.
        var mismatched = samples.Select((s, i) => (s, i)).FirstOrDefault(x => x.s.SamplingLogProbs.Length != x.s.Sequence.Response.Length);
        if (mismatched.s is not null)
            throw new ArgumentException($"sample {mismatched.i} ({mismatched.s.Id}): {mismatched.s.SamplingLogProbs.Length} sampling log-probs for "
                + $"{mismatched.s.Sequence.Response.Length} response tokens (a stop token needs its log-prob too)", nameof(samples));
        using var scope = NewDisposeScope();
        var g = samples.Count / c;
        Tensor Grid(IEnumerable<float> values) => tensor(values.ToArray(), device: policy.Device).reshape(g, c);   // [G, C]
        var fixedPart = new GroupBatch
        {
            LogProbs = zeros(g, c),                                                     // replaced by the policy's below
            RefLogProbs = reference.Sums(samples.Select(s => s.Id), policy.Device).reshape(g, c),
            SamplingLogProbs = Grid(samples.Select(s => s.SamplingLogProbs.Sum())),
            Rewards = Grid(samples.Select(s => (float)s.Reward)),
            Lengths = Grid(samples.Select(s => (float)s.Sequence.Response.Length)),
        };
        optimizer.ZeroGrad();
        var result = GradientAccumulation.Backward(policy, samples.Select(s => s.Sequence).ToList(), microBatch ?? samples.Count,
            logProbs => loss.Compute(fixedPart with { LogProbs = logProbs.reshape(g, c) }), padId);
        if (!double.IsFinite(result.Loss))
            throw new InvalidOperationException($"non-finite loss ({result.Loss}); the optimizer did not step");
        var step = optimizer.Step();
        result.LogProbs.MoveToOuterDisposeScope();
        return (result, step);
    }
}

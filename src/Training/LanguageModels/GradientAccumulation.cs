using PrefTune.Training.Methods;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// The result of one accumulated minibatch: the loss and diagnostics as computed once on all M sequences, and the
/// sequence log-probs the loss saw.
/// </summary>
/// <param name="LogProbs">(M) log pi_theta(y|x) before the step, detached; it lives in the caller's dispose scope.</param>
public sealed record AccumulatedLoss(double Loss, IReadOnlyDictionary<string, double> Metrics, PairsUsed? Pairs, Tensor LogProbs);

/// <summary>
/// Gradient accumulation for a minibatch of M sequences too large for one forward pass with gradient: M stays the
/// optimizer's minibatch (one step per M), while the model sees micro-batches of at most m sequences.
/// </summary>
/// <remarks>
/// Scaling each micro-batch's loss by its share (m / M) is exact only for a loss that is a mean over samples.
/// PrefTune's losses are not: DPO averages over the pairs a group forms, GRPO and RLOO normalise within a group,
/// and a stateful loss (REINFORCE's running baseline) must see each minibatch once, not once per micro-batch. So the loss runs once, unchanged, on all M log-probs, and the chain rule
/// carries it back: (1) the M sequence log-probs without gradient, micro-batch by micro-batch; (2) the loss on them
/// as a leaf, backward, giving dL/d logp (M); (3) each micro-batch again with gradient, backpropagating
/// sum_i logp_i * dL/d logp_i. The gradient is the full minibatch's (to float rounding) for every loss, at the
/// cost of one extra forward pass without gradient (which stores no activations); a minibatch that fits in one
/// micro-batch (m &gt;= M) takes the plain single pass.
/// </remarks>
public static class GradientAccumulation
{
    /// <summary>
    /// Adds d loss / d theta of the whole minibatch to the model's gradients (like backward: zero them first).
    /// loss maps the (M) sequence log-probs, in the order of <paramref name="sequences"/>, to the method's output.
    /// </summary>
    public static AccumulatedLoss Backward(LanguageModel model, IReadOnlyList<TokenSequence> sequences, int microBatch,
        Func<Tensor, LossOutput> loss, int padId = 0)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences in the minibatch", nameof(sequences));
        return Backward(sequences.Count, microBatch,
            (start, count) => SequenceLogProbs.Sum(model, sequences.Skip(start).Take(count).ToList(), padId), loss);
    }

    /// <summary>
    /// The same for any policy: <paramref name="logProbsOf"/>(start, count) gives the (count) sequence log-probs of the
    /// minibatch's samples start..start+count-1, with gradient when enabled (the Learner's policy family scores them).
    /// </summary>
    public static AccumulatedLoss Backward(int count, int microBatch, Func<int, int, Tensor> logProbsOf, Func<Tensor, LossOutput> loss)
    {
        if (microBatch < 1) throw new ArgumentOutOfRangeException(nameof(microBatch), microBatch, "micro_batch must be at least 1");
        if (count == 0) throw new ArgumentException("no sequences in the minibatch", nameof(count));
        using var scope = NewDisposeScope();
        var chunks = Enumerable.Range(0, (count + microBatch - 1) / microBatch)
            .Select(k => (Start: k * microBatch, Count: Math.Min(microBatch, count - k * microBatch))).ToList();
        if (chunks.Count == 1)
        {
            // The minibatch fits in one pass: plain backward, without the extra forward pass.
            var whole = logProbsOf(0, count);                                                      // (M), with gradient
            var direct = loss(whole);
            direct.Loss.backward();
            return Result(direct, whole.detach().MoveToOuterDisposeScope());
        }
        Tensor logProbs;                                                                           // (M)
        using (no_grad())
            logProbs = cat(chunks.Select(chunk => logProbsOf(chunk.Start, chunk.Count)).ToList(), 0);

        var leaf = logProbs.detach().requires_grad_(true);                                         // (M)
        var output = loss(leaf);
        output.Loss.backward();
        // A loss that ignores some sequences (no pairs) leaves them without a gradient: zero, not null.
        var upstream = leaf.grad is null ? zeros_like(leaf) : leaf.grad.detach().clone();          // (M) dL/d logp

        foreach (var chunk in chunks)
        {
            using var step = NewDisposeScope();
            var micro = logProbsOf(chunk.Start, chunk.Count);                                      // (m), with gradient
            (micro * upstream.narrow(0, chunk.Start, chunk.Count)).sum().backward();
        }

        return Result(output, logProbs.MoveToOuterDisposeScope());
    }

    private static AccumulatedLoss Result(LossOutput output, Tensor logProbs) =>
        new(output.Loss.item<float>(), output.Metrics.ToDictionary(m => m.Key, m => (double)m.Value.item<float>()), output.Pairs, logProbs);
}

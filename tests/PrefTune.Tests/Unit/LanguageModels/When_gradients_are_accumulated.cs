using PrefTune.Training.LanguageModels;
using PrefTune.Training.Methods;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>Micro-batches with gradient accumulation give the full minibatch's gradient; pi_ref is scored once per batch.</summary>
public class When_gradients_are_accumulated
{
    // M = 6: three prompt groups of C = 2, prompts and responses of different lengths.
    private static readonly TokenSequence[] Minibatch =
    [
        new([1, 17, 33], [40, 8, 71, 9]), new([1, 17, 33], [5]),
        new([1], [12, 13]), new([1], [50, 51, 52, 53, 54]),
        new([1, 60, 2, 90], [3, 3, 64]), new([1, 60, 2, 90], [7, 7]),
    ];
    private static readonly float[,] Rewards = { { 1, 0 }, { 0, 2 }, { 0.5f, 0.5f } };   // the last group ties: no pair

    private static Func<Tensor, LossOutput> MeanLoss => logProbs => new LossOutput(-logProbs.mean(), new Dictionary<string, Tensor>());

    private static Func<Tensor, LossOutput> DpoLoss(Tensor reference) => logProbs => new Dpo(beta: 0.5, threshold: 0).Compute(new GroupBatch
    {
        LogProbs = logProbs.reshape(3, 2),
        RefLogProbs = reference.reshape(3, 2),
        SamplingLogProbs = reference.reshape(3, 2),
        Rewards = tensor(Rewards),
        Lengths = ones(3, 2),
    });

    /// <summary>Every parameter's gradient, flattened in parameter order.</summary>
    private static float[] Gradients(LanguageModel model) =>
        model.parameters().SelectMany(p => p.grad!.data<float>().ToArray()).ToArray();

    private static (float[] Gradient, double Loss) Full(LanguageModel model, Func<Tensor, LossOutput> loss)
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        var output = loss(SequenceLogProbs.Sum(model, Minibatch));
        output.Loss.backward();
        return (Gradients(model), output.Loss.item<float>());
    }

    private static (float[] Gradient, double Loss) Accumulated(LanguageModel model, Func<Tensor, LossOutput> loss, int microBatch)
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        var result = GradientAccumulation.Backward(model, Minibatch, microBatch, loss);
        return (Gradients(model), result.Loss);
    }

    [Fact]
    public void Micro_batches_give_the_full_minibatch_gradient()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        using var scope = NewDisposeScope();
        Tensor reference;
        using (no_grad()) reference = SequenceLogProbs.Sum(model, Minibatch) - 0.3f * arange(6);   // pi_ref != pi: DPO's margins are not 0
        foreach (var (name, loss) in new[] { ("mean", MeanLoss), ("dpo", DpoLoss(reference)) })
        {
            var (full, fullLoss) = Full(model, loss);
            Assert.True(full.Max(Math.Abs) > 1e-3, $"{name}: the gradient is not trivially 0");
            foreach (var m in new[] { 1, 2, 4, 6 })                                                  // 4 splits unevenly: 4 + 2
            {
                var (accumulated, accumulatedLoss) = Accumulated(model, loss, m);
                Assert.True(Math.Abs(fullLoss - accumulatedLoss) <= 1e-5 * Math.Max(1, Math.Abs(fullLoss)), $"{name}, micro-batch {m}: loss {accumulatedLoss} vs {fullLoss}");
                var diff = full.Zip(accumulated, (a, b) => Math.Abs(a - b)).Max();
                Assert.True(diff <= 1e-5, $"{name}, micro-batch {m}: gradients differ by {diff}");
            }
        }
    }

    [Fact]
    public void A_sum_loss_gets_M_times_the_mean_loss_gradient()
    {
        // The upstream gradient carried back is dL/dlogp_i: -1/M for L = -mean(logp), -1 for L = -sum(logp). With
        // M = 6 (and different micro-batch sizes) the second model gradient must be 6 times the first.
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-gpt-neox"));
        var (mean, _) = Accumulated(model, MeanLoss, 2);
        var (sum, _) = Accumulated(model, logProbs => new LossOutput(-logProbs.sum(), new Dictionary<string, Tensor>()), 3);
        var diff = mean.Zip(sum, (a, b) => Math.Abs(6 * a - b)).Max();
        Assert.True(diff <= 1e-5, $"sum loss != 6 x mean loss by {diff}");
    }

    [Fact]
    public void Reference_log_probs_are_computed_once_per_batch_and_read_by_sample_id()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        var samples = Minibatch.Select((s, i) => (Id: new Guid(i + 1, 0, 0, new byte[8]), Sequence: s)).ToList();
        var calls = 0;
        var scored = 0;
        var reference = ReferenceLogProbs.Compute(batch =>
        {
            calls++;
            scored += batch.Count;
            return SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, batch), tokens: true);
        }, samples, microBatch: 4);
        Assert.Equal(2, calls);                                                    // 6 samples in micro-batches of 4: 4 + 2
        Assert.Equal(6, scored);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var direct = SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, Minibatch), tokens: true);
        var order = new Random(5);
        for (var pass = 0; pass < 3; pass++)                                     // T = 3 passes of minibatches of 2, as RunLearner shuffles
        {
            var shuffled = Enumerable.Range(0, 6).ToArray();
            order.Shuffle(shuffled);
            foreach (var minibatch in shuffled.Chunk(2))
            {
                var sums = reference.Sums(minibatch.Select(i => samples[i].Id)).data<float>().ToArray();
                var tokens = reference.Tokens(minibatch.Select(i => samples[i].Id).ToList(), 5);
                for (var k = 0; k < minibatch.Length; k++)
                {
                    Assert.True(Math.Abs(sums[k] - direct.Sum[minibatch[k]].item<float>()) <= 1e-5, $"sample {minibatch[k]}");
                    Assert.True(Fixtures.MaxDiff([tokens[k].data<float>().ToArray()], [direct.Tokens![minibatch[k]].narrow(0, 0, 5).data<float>().ToArray()]) <= 1e-5);
                }
            }
        }
        Assert.Equal(2, calls);                                                    // the passes ran no reference forward pass
        var stranger = Guid.NewGuid();
        Assert.Contains(stranger.ToString(), Assert.Throws<KeyNotFoundException>(() => reference.Sums([stranger])).Message);
    }
}

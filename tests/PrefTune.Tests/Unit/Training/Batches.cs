using PrefTune.Training.Methods;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

/// <summary>Hand-made [G, C] minibatches for the loss tests. LogProbs is a leaf with grad, so tests can read d loss / d logp.</summary>
internal static class Batches
{
    public static GroupBatch Of(float[,] logProbs, float[,] rewards, float[,]? refLogProbs = null, float[,]? lengths = null)
    {
        var g = logProbs.GetLength(0);
        var c = logProbs.GetLength(1);
        return new GroupBatch
        {
            LogProbs = tensor(logProbs).requires_grad_(true),
            RefLogProbs = tensor(refLogProbs ?? logProbs),
            SamplingLogProbs = tensor(logProbs),
            Rewards = tensor(rewards),
            Lengths = lengths is null ? ones(g, c) : tensor(lengths),
        };
    }

    /// <summary>d loss / d LogProbs as a [G, C] array.</summary>
    public static float[,] Gradient(GroupBatch batch, Tensor loss)
    {
        loss.backward();
        var grad = batch.LogProbs.grad ?? throw new InvalidOperationException("no gradient reached LogProbs");
        var g = (int)grad.shape[0];
        var c = (int)grad.shape[1];
        var values = grad.data<float>().ToArray();
        var result = new float[g, c];
        for (var i = 0; i < g; i++)
            for (var j = 0; j < c; j++)
                result[i, j] = values[i * c + j];
        return result;
    }

    public static double Value(Tensor scalar) => scalar.item<float>();
}

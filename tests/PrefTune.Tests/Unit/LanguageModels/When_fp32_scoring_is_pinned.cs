using PrefTune.Training.LanguageModels;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// The float32 path to the bit: stories260K's sequence log-probs of a padded batch and its gradient, pinned as the float
/// bits the code computed before bf16 mixed precision existed (commit cc72de2, one torch thread). A change that routes
/// float32 through different kernels or casts (MixedPrecision's fp32 mode must be the old calls) shows here first.
/// Within 64 float32 steps (ulps) of the pins rather than to the bit: libtorch picks its kernels by the CPU (AVX2 or
/// AVX-512) and splits reductions by its thread count, so another machine adds in another order (measured: 7 to 10 ulps
/// apart on a later machine, one thread). A bf16 cast anywhere is about 2^16 ulps off, far outside.
/// </summary>
public class When_fp32_scoring_is_pinned(ITestOutputHelper output)
{
    /// <summary>Three sequences of different prompt and response lengths from run.c's golden text: left and right padding both used.</summary>
    public static IReadOnlyList<TokenSequence> Batch()
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        var text = Fixtures.Ints(expected["prompt_ids"]).Concat(Fixtures.Ints(expected["greedy_ids"])).ToArray();
        return [new(text[..5], text[5..45]), new(text[..9], text[9..30]), new(text[..2], text[2..40])];
    }

    // BitConverter.SingleToInt32Bits of what commit cc72de2 computed: sums -13.98629, -4.562763, -9.770022; the embedding
    // gradient's sum 10.482346 and sum of |.| 2987.6677.
    private static readonly int[] PinnedSums = [-1050687528, -1064173016, -1055108605];
    private const int PinnedGradientSum = 1093121968, PinnedGradientAbsSum = 1161476783;

    [Fact]
    public void Log_probs_and_gradients_keep_their_bits()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        using var scope = NewDisposeScope();
        var sums = SequenceLogProbs.Sum(model, Batch());                                    // (3), with gradient
        sums.sum().backward();
        var values = sums.detach().data<float>().ToArray();
        var grad = model.parameters().First().grad!;                                       // the token embedding, also the (tied) head
        var (gradSum, gradAbsSum) = (grad.sum().item<float>(), grad.abs().sum().item<float>());
        output.WriteLine($"sums {string.Join(", ", values.Select(v => $"{v} (bits {BitConverter.SingleToInt32Bits(v)})"))}");
        output.WriteLine($"embedding gradient sum {gradSum} (bits {BitConverter.SingleToInt32Bits(gradSum)}), |sum| {gradAbsSum} (bits {BitConverter.SingleToInt32Bits(gradAbsSum)})");
        const int exact = 64;
        Assert.All(values.Zip(PinnedSums), p => Assert.InRange(BitConverter.SingleToInt32Bits(p.First), p.Second - exact, p.Second + exact));
        Assert.InRange(BitConverter.SingleToInt32Bits(gradSum), PinnedGradientSum - exact, PinnedGradientSum + exact);
        Assert.InRange(BitConverter.SingleToInt32Bits(gradAbsSum), PinnedGradientAbsSum - exact, PinnedGradientAbsSum + exact);
    }
}

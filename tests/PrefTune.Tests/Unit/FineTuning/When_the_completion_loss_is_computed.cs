using PrefTune.Training.FineTuning;
using PrefTune.Training.LanguageModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.FineTuning;

/// <summary>
/// SFT's completion-only loss on logits written by hand, vocabulary 3. Row 0: prompt [1, 1], completion [2, 0]; row 1:
/// prompt [1] (left-padded) and completion [2] (right-padded). Column 1's logits predict each row's first completion
/// token, column 2's row 0's second; column 0 (a prompt token, or a pad) and column 3 (the last token, or a pad) are read by
/// nothing.
/// </summary>
public sealed class When_the_completion_loss_is_computed
{
    private static PackedSequences Batch() => new(
        tensor(new long[] { 1, 1, 2, 0, /* row 1 */ 0, 1, 2, 0 }, [2, 4]),
        tensor(new long[] { 1, 1, 1, 1, /* row 1 */ 0, 1, 1, 0 }, [2, 4]),
        tensor(new float[] { 1, 1, /* row 1 */ 1, 0 }, [2, 2]),
        PromptColumns: 2);

    /// <summary>Column 1: uniform (p = 1/3 for token 2, the argmax is token 0: wrong). Row 0's column 2: logits [ln 2, 0, 0],
    /// p(0) = 2/4 = 1/2 (right). Columns 0 and 3 hold <paramref name="ignored"/>.</summary>
    private static Tensor Logits(float ignored)
    {
        var ln2 = (float)Math.Log(2);
        return tensor(new float[]
        {
            ignored, -ignored, 2 * ignored,  0, 0, 0,  ln2, 0, 0,  ignored, 3, -ignored,
            -ignored, ignored, 1,            0, 0, 0,  ignored, 5, 0,  7, ignored, 0,
        }, [2, 4, 3]).requires_grad_();
    }

    [Fact]
    public void It_is_the_mean_nll_of_the_completion_tokens()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(0);
        var loss = SupervisedFineTuning.Loss(logits, Batch());
        // three completion tokens: -ln(1/3) twice (column 1 of both rows) and -ln(1/2) once
        Assert.Equal(3, loss.Tokens);
        Assert.Equal((2 * Math.Log(3) + Math.Log(2)) / 3, loss.Mean.item<float>(), 5);
        Assert.Equal(1, loss.Correct.item<float>());   // only row 0's second token is the argmax
    }

    [Fact]
    public void Its_gradient_is_softmax_minus_the_target_over_the_token_count()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(0);
        SupervisedFineTuning.Loss(logits, Batch()).Mean.backward();
        var grad = logits.grad!.data<float>().ToArray();
        float[] Cell(int row, int column) => grad.Skip((row * 4 + column) * 3).Take(3).ToArray();
        // (softmax - onehot) / 3 tokens: column 1 targets 2, [1/3, 1/3, 1/3 - 1] / 3; row 0's column 2 targets 0, [1/2 - 1, 1/4, 1/4] / 3
        float[] first = [1 / 9f, 1 / 9f, -2 / 9f];
        AssertClose(first, Cell(0, 1));
        AssertClose(first, Cell(1, 1));
        AssertClose([-1 / 6f, 1 / 12f, 1 / 12f], Cell(0, 2));
        // nothing flows to the prompt's own positions, the pads, or past the end
        foreach (var (row, column) in new[] { (0, 0), (0, 3), (1, 0), (1, 2), (1, 3) })
            AssertClose([0, 0, 0], Cell(row, column));
    }

    [Fact]
    public void Changing_the_prompt_positions_logits_leaves_it_unchanged()
    {
        using var scope = NewDisposeScope();
        var (plain, changed) = (SupervisedFineTuning.Loss(Logits(0), Batch()), SupervisedFineTuning.Loss(Logits(40), Batch()));
        Assert.Equal(plain.Mean.item<float>(), changed.Mean.item<float>());
        Assert.Equal(plain.Correct.item<float>(), changed.Correct.item<float>());
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 5);
    }
}

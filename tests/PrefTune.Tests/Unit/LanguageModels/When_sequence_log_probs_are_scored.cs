using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// SequenceLogProbs on the tiny HF fixtures: a padded batch against each sequence run alone with log_softmax
/// computed here by hand (in double), the response mask, entropies, and the log-probs TextGeneration reported.
/// </summary>
public class When_sequence_log_probs_are_scored
{
    // Prompts and responses of different lengths, so both paddings occur; ids 1..95 of the fixtures' vocabulary of 96.
    private static readonly TokenSequence[] Sequences =
    [
        new([1, 17, 33], [40, 8, 71, 9]),
        new([1], [5]),
        new([1, 60, 2, 90, 12, 7], [3, 3, 64]),
        new([1, 44], []),
    ];

    /// <summary>log_softmax(row)[id] in double.</summary>
    internal static double LogSoftmax(float[] row, int id)
    {
        var max = row.Max();
        return row[id] - (max + Math.Log(row.Sum(x => Math.Exp(x - max))));
    }

    /// <summary>Per-token log-probs of the response of one sequence run alone (no padding), read off its logits by hand.</summary>
    internal static double[] AloneByHand(LanguageModel model, TokenSequence s)
    {
        var logits = Fixtures.Logits(model, [.. s.Prompt, .. s.Response]);          // (P + R, V) rows
        return s.Response.Select((id, t) => LogSoftmax(logits[s.Prompt.Length + t - 1], id)).ToArray();
    }

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt-neox")]
    public void A_padded_batch_gives_each_sequence_what_it_gets_alone(string fixture)
    {
        using var model = Fixtures.Load(Fixtures.Tiny(fixture));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var scores = SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, Sequences), tokens: true);
        Assert.Equal([Sequences.Length], scores.Sum.shape);
        Assert.Equal([Sequences.Length, 4L], scores.Tokens!.shape);                  // R = the longest response
        var sums = scores.Sum.data<float>().ToArray();
        for (var i = 0; i < Sequences.Length; i++)
        {
            var alone = AloneByHand(model, Sequences[i]);
            var row = scores.Tokens[i].data<float>().ToArray();
            for (var t = 0; t < row.Length; t++)
                Assert.True(Math.Abs(row[t] - (t < alone.Length ? alone[t] : 0)) <= 1e-5, $"sequence {i} token {t}: {row[t]} vs {(t < alone.Length ? alone[t] : 0)}");
            Assert.True(Math.Abs(sums[i] - alone.Sum()) <= 1e-5, $"sequence {i}: sum {sums[i]} vs {alone.Sum()}");
        }
        Assert.Equal(0f, sums[3]);                                                    // an empty response has log-prob 0
    }

    [Fact]
    public void Only_response_tokens_count()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Three tokens: prompt [5], response [17, 42]. Alone its logits L0, L1 (predicting columns 1, 2) give
        // log pi(17 | 5) = lsm(L0)[17] and log pi(42 | 5, 17) = lsm(L1)[42]; the prompt token itself is not scored.
        var logits = Fixtures.Logits(model, [5, 17, 42]);
        var expected = LogSoftmax(logits[0], 17) + LogSoftmax(logits[1], 42);
        // Batched with a longer prompt and response, this row has a left pad and a right pad: neither may count,
        // so a different pad id changes nothing.
        TokenSequence[] batch = [new([5], [17, 42]), new([1, 9, 9], [4, 4, 4, 4])];
        foreach (var padId in new[] { 0, 50 })
        {
            var scores = SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, batch, padId), tokens: true);
            Assert.True(Math.Abs(scores.Sum[0].item<float>() - expected) <= 1e-5, $"pad {padId}: {scores.Sum[0].item<float>()} vs {expected}");
            Assert.Equal([1f, 1f, 0f, 0f], scores.Mask[0].data<float>().ToArray());
            Assert.Equal(0f, scores.Tokens![0, 2].item<float>());
        }
    }

    [Fact]
    public void Entropy_is_that_of_the_next_token_distribution()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-gpt-neox"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var scores = SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, [new([1, 2], [30, 31]), new([7], [8])]), entropy: true);
        var logits = Fixtures.Logits(model, [1, 2, 30, 31]);
        for (var t = 0; t < 2; t++)
        {
            var row = logits[1 + t];
            var byHand = -Enumerable.Range(0, row.Length).Sum(v => Math.Exp(LogSoftmax(row, v)) * LogSoftmax(row, v));
            Assert.True(Math.Abs(scores.Entropy![0, t].item<float>() - byHand) <= 1e-5, $"position {t}");
        }
        Assert.Equal(0f, scores.Entropy![1, 1].item<float>());                      // past the end of the second response
    }

    [Fact]
    public void Sampled_tokens_get_the_log_probs_generation_reported()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        int[][] prompts = [[1, 17, 33], [1, 5, 6, 7, 8, 9]];
        var settings = new SamplingSettings { MaxNewTokens = 12, Samples = 3, Seed = 11 };
        // A token the first response draws fourth, declared a stop id, ends that response there (same seed, same
        // draws): the stop token is scored too, and responses without it run to the limit.
        var stopId = TextGeneration.Generate(model, prompts, settings)[0].Ids[3];
        var responses = TextGeneration.Generate(model, prompts, settings with { StopIds = [stopId] });
        Assert.Contains(responses, r => r.Finish == FinishReason.Stop);
        Assert.Contains(responses, r => r.Finish == FinishReason.Length);
        var sequences = responses.Select(r => TokenSequence.Of(prompts[r.Prompt], r)).ToList();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var scores = SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, sequences), tokens: true);
        for (var i = 0; i < responses.Count; i++)
        {
            float[] reported = responses[i].StopLogProb is { } stop ? [.. responses[i].LogProbs, stop] : responses[i].LogProbs;
            var row = scores.Tokens![i].data<float>().Take(reported.Length).ToArray();
            Assert.True(Fixtures.MaxDiff([row], [reported]) <= 1e-4, $"response {i}");
            Assert.True(Math.Abs(scores.Sum[i].item<float>() - reported.Sum()) <= 1e-4, $"response {i}: sum");
        }
    }

    [Fact]
    public void Bad_sequences_are_named()
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        Assert.Contains("sequence 1: prompt is empty", Assert.Throws<ArgumentException>(() => SequenceLogProbs.Pack(model, [new([1], [2]), new([], [2])])).Message);
        Assert.Contains("sequence 0: prompt 60 + response 10 tokens exceed the model's context of 64",
            Assert.Throws<ArgumentException>(() => SequenceLogProbs.Pack(model, [new(new int[60], new int[10])])).Message);
        Assert.Contains("sequence 0: a token id lies outside the model's vocabulary 0..95",
            Assert.Throws<ArgumentException>(() => SequenceLogProbs.Pack(model, [new([1], [96])])).Message);
        using var ids = zeros(1, 3, dtype: ScalarType.Int64);
        using var mask = ones(1, 3, dtype: ScalarType.Int64);
        using var responseMask = ones(1, 3);
        Assert.Contains("P = 0 (at least 1)", Assert.Throws<ArgumentException>(() => SequenceLogProbs.Score(model, new PackedSequences(ids, mask, responseMask, 0))).Message);
        Assert.Equal("padId", Assert.Throws<ArgumentOutOfRangeException>(() => SequenceLogProbs.Pack(model, [new([1], [2])], padId: -1)).ParamName);
    }
}

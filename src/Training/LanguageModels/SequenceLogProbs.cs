using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// One prompt and the response to score under it. A response that ended on a stop token includes that token
/// (<see cref="Of(int[], GeneratedResponse)"/>): learning when to stop is part of the policy, and a length reward
/// acts on nothing else.
/// </summary>
public sealed record TokenSequence(int[] Prompt, int[] Response)
{
    /// <summary>The sequence a sampled response scores: its new tokens, then the stop token if it stopped.</summary>
    public static TokenSequence Of(int[] prompt, GeneratedResponse response) =>
        new(prompt, response.StopId is { } stop ? [.. response.Ids, stop] : response.Ids);
}

/// <summary>
/// A batch of N sequences in one packed layout: prompts left-padded into the first P columns, responses
/// right-padded into the last R, so that every response starts in column P and one narrow reads all of them.
/// </summary>
/// <param name="Ids">(N, P + R) int64; pads hold <c>padId</c> (masked out, any id in the vocabulary does).</param>
/// <param name="AttentionMask">(N, P + R) int64: 1 on real prompt and response tokens, 0 on padding.</param>
/// <param name="ResponseMask">(N, R) float32: 1 on response tokens, 0 on the right padding.</param>
/// <param name="PromptColumns">P, the longest prompt.</param>
public sealed record PackedSequences(Tensor Ids, Tensor AttentionMask, Tensor ResponseMask, int PromptColumns)
{
    public long Count => Ids.shape[0];
    public int ResponseColumns => (int)ResponseMask.shape[1];
}

/// <summary>What <see cref="SequenceLogProbs.Score"/> returns; every tensor is zero past a response's end.</summary>
/// <param name="Sum">(N) sum over response tokens of log pi(y_t | x, y_&lt;t): the sequence log-prob every loss reads.</param>
/// <param name="Tokens">(N, R) log pi(y_t | x, y_&lt;t) of response token t, or null when not asked for.</param>
/// <param name="Entropy">(N, R) entropy of pi(. | x, y_&lt;t) at response position t, or null when not asked for.</param>
/// <param name="Mask">(N, R) 1 on response tokens.</param>
public sealed record SequenceScores(Tensor Sum, Tensor? Tokens, Tensor? Entropy, Tensor Mask);

/// <summary>
/// Log-probs of given responses under a causal LM in one forward pass per batch: the learner's side of
/// <see cref="TextGeneration"/>. The logits at column j predict the token in column j + 1, so response token t
/// (column P + t) is read from the logits at column P + t - 1; prompt and pad tokens are never scored.
/// </summary>
public static class SequenceLogProbs
{
    /// <summary>Packs sequences into the layout of <see cref="PackedSequences"/>, checking them against the model.</summary>
    public static PackedSequences Pack(LanguageModel model, IReadOnlyList<TokenSequence> sequences, int padId = 0)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences to score", nameof(sequences));
        var config = model.Config;
        for (var i = 0; i < sequences.Count; i++)
        {
            var (prompt, response) = (sequences[i].Prompt, sequences[i].Response);
            if (prompt.Length == 0) throw new ArgumentException($"sequence {i}: prompt is empty (a prompt needs at least one token, e.g. BOS)", nameof(sequences));
            if (prompt.Length + response.Length > config.MaxPositions)
                throw new ArgumentException($"sequence {i}: prompt {prompt.Length} + response {response.Length} tokens exceed the model's context of {config.MaxPositions}", nameof(sequences));
            if (prompt.Concat(response).Any(id => id < 0 || id >= config.VocabSize))
                throw new ArgumentException($"sequence {i}: a token id lies outside the model's vocabulary 0..{config.VocabSize - 1}", nameof(sequences));
        }
        if (padId < 0 || padId >= config.VocabSize) throw new ArgumentOutOfRangeException(nameof(padId), padId, "the pad id must lie in the vocabulary");

        var n = sequences.Count;
        var p = sequences.Max(s => s.Prompt.Length);
        var r = Math.Max(1, sequences.Max(s => s.Response.Length));   // one column at least, so every shape is real
        var ids = new long[n * (p + r)];
        var attention = new long[n * (p + r)];
        var responseMask = new float[n * r];
        for (var i = 0; i < n; i++)
        {
            var (prompt, resp) = (sequences[i].Prompt, sequences[i].Response);
            var row = i * (p + r);
            for (var j = 0; j < p; j++)
            {
                var k = j - (p - prompt.Length);                       // left padding
                ids[row + j] = k >= 0 ? prompt[k] : padId;
                attention[row + j] = k >= 0 ? 1 : 0;
            }
            for (var t = 0; t < r; t++)
            {
                var real = t < resp.Length;                            // right padding
                ids[row + p + t] = real ? resp[t] : padId;
                attention[row + p + t] = real ? 1 : 0;
                responseMask[i * r + t] = real ? 1 : 0;
            }
        }
        var device = model.Device;
        return new PackedSequences(tensor(ids, [n, p + r], device: device), tensor(attention, [n, p + r], device: device),
            tensor(responseMask, [n, r], device: device), p);
    }

    /// <summary>Sequence log-probs (N) of the responses, with the model's gradient unless called under no_grad.</summary>
    public static Tensor Sum(LanguageModel model, IReadOnlyList<TokenSequence> sequences, int padId = 0)
    {
        using var scope = NewDisposeScope();
        return Score(model, Pack(model, sequences, padId)).Sum.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scores a packed batch: the (N) masked sums, and on request the (N, R) token log-probs and entropies.
    /// Positions come from the attention mask (HF's <c>cumsum(mask) - 1</c>), so a left-padded prompt sits at the
    /// positions it has alone.
    /// </summary>
    public static SequenceScores Score(LanguageModel model, PackedSequences batch, bool tokens = false, bool entropy = false)
    {
        if (model.Config.Head != ModelHead.CausalLm) throw new ArgumentException($"{model.Config.Architecture} has no language-model head to score tokens with");
        var (p, r) = (batch.PromptColumns, batch.ResponseColumns);
        // Response token 0 is predicted from the last prompt column: a batch without prompt columns has nothing to read it from.
        if (p < 1 || batch.Ids.shape[1] != p + r || batch.AttentionMask.shape[1] != p + r || batch.ResponseMask.shape[0] != batch.Count)
            throw new ArgumentException($"packed batch: ids (N, P + R) = [{string.Join(", ", batch.Ids.shape)}] with P = {p} (at least 1), R = {r} and masks of the same rows", nameof(batch));
        using var scope = NewDisposeScope();
        var logits = model.forward(batch.Ids, batch.AttentionMask);                          // (N, P + R, V)
        var scores = FromLogits(logits, batch, tokens, entropy);
        return new SequenceScores(scores.Sum.MoveToOuterDisposeScope(), scores.Tokens?.MoveToOuterDisposeScope(),
            scores.Entropy?.MoveToOuterDisposeScope(), scores.Mask.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="Score"/> from logits the caller already has: (N, P + R, V) over the packed batch (a forward pass that
    /// also gave the hidden states, <see cref="LanguageModel.ForwardWithHidden"/>). The same arithmetic as Score, so the
    /// token log-probs of both are equal.
    /// </summary>
    public static SequenceScores FromLogits(Tensor logits, PackedSequences batch, bool tokens = false, bool entropy = false)
    {
        var (p, r) = (batch.PromptColumns, batch.ResponseColumns);
        if (p < 1 || logits.shape[1] != p + r || logits.shape[0] != batch.Count)
            throw new ArgumentException($"logits [{string.Join(", ", logits.shape)}] do not cover the packed batch (N = {batch.Count}, P = {p}, R = {r})", nameof(logits));
        using var scope = NewDisposeScope();
        // Only the R columns that predict response tokens go through log_softmax: (N, R, V) instead of (N, P + R, V).
        var logProbs = F.log_softmax(logits.narrow(1, p - 1, r).to_type(ScalarType.Float32), -1);   // (N, R, V)
        var targets = batch.Ids.narrow(1, p, r).unsqueeze(-1);                               // (N, R, 1)
        var tokenLogProbs = logProbs.gather(-1, targets).squeeze(-1) * batch.ResponseMask;  // (N, R), 0 on pads
        var sum = tokenLogProbs.sum(1);                                                      // (N)
        Tensor? entropies = null;
        if (entropy)
            entropies = -(logProbs.exp() * logProbs).sum(-1) * batch.ResponseMask;          // (N, R)
        return new SequenceScores(sum.MoveToOuterDisposeScope(), tokens ? tokenLogProbs.MoveToOuterDisposeScope() : null,
            entropies?.MoveToOuterDisposeScope(), batch.ResponseMask.alias().MoveToOuterDisposeScope());
    }
}

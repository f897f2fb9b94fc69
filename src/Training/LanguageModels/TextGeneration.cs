using PrefTune.Messages;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

/// <summary>How to sample continuations (HF generate's names where it has them).</summary>
public sealed record SamplingSettings
{
    /// <summary>Tokens to generate at most after each prompt (max_new_tokens).</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Softmax temperature; 0 picks the argmax (greedy).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Sample among the k most likely tokens only; 0 keeps all.</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: the smallest set of most likely tokens whose probability reaches p; 1 keeps all.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Ids that end a response (not part of it): stories260K ends a story on 1.</summary>
    public IReadOnlyList<int> StopIds { get; init; } = [];
    /// <summary>C: responses per prompt.</summary>
    public int Samples { get; init; } = 1;
    /// <summary>Seed of the sampling generator: the same seed and request give the same tokens.</summary>
    public long Seed { get; init; }
    /// <summary>Keep each layer's keys and values (one new token per step) instead of re-running the prefix.</summary>
    public bool UseCache { get; init; } = true;
    /// <summary>Rows (prompt x sample) run together in one batch at most.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>The id written into left padding (masked out, so any id in the vocabulary does).</summary>
    public int PadId { get; init; }
}


/// <summary>One response: the new tokens (without the stop token), their log-probs, and why it ended.</summary>
/// <param name="LogProbs">log pi(token | prefix) of each token in <paramref name="Ids"/> under the model itself
/// (temperature 1, no top-k/top-p), what a learner's importance ratios and losses need.</param>
/// <param name="StopId">The stop token that ended it, if one did.</param>
/// <param name="StopLogProb">log pi of that stop token.</param>
public sealed record GeneratedResponse(int Prompt, int Sample, int[] Ids, float[] LogProbs, FinishReason Finish, int? StopId, float? StopLogProb);

/// <summary>
/// Batched autoregressive sampling from a causal LM: prompts x samples rows, left-padded to a common length with
/// an attention mask and HF's positions from it (real tokens 0..len-1), a KV cache, temperature, top-k, top-p,
/// stop ids, and a finish reason and log-probs per response. Deterministic given the seed, the request and the weights.
/// </summary>
public static class TextGeneration
{
    public static IReadOnlyList<GeneratedResponse> Generate(LanguageModel model, IReadOnlyList<int[]> prompts, SamplingSettings settings)
    {
        if (model.Config.Head != ModelHead.CausalLm) throw new ArgumentException($"{model.Config.Architecture} does not generate text");
        if (settings.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(settings), settings.MaxNewTokens, "max_new_tokens must be at least 1");
        if (settings.Temperature < 0) throw new ArgumentOutOfRangeException(nameof(settings), settings.Temperature, "temperature must be 0 (greedy) or positive");
        if (settings.Samples < 1 || settings.MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(settings), "samples and max batch must be at least 1");
        for (var i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Length == 0) throw new ArgumentException($"prompt {i} is empty (a prompt needs at least one token, e.g. BOS)");
            if (prompts[i].Length + settings.MaxNewTokens > model.Config.MaxPositions)
                throw new ArgumentException($"prompt {i} has {prompts[i].Length} tokens; with {settings.MaxNewTokens} new tokens it exceeds the model's context of {model.Config.MaxPositions}");
            if (prompts[i].Any(id => id < 0 || id >= model.Config.VocabSize))
                throw new ArgumentException($"prompt {i} has a token id outside the model's vocabulary 0..{model.Config.VocabSize - 1}");
        }

        var rows = prompts.SelectMany((_, p) => Enumerable.Range(0, settings.Samples).Select(s => (Prompt: p, Sample: s))).ToList();
        using var generator = new Generator((ulong)settings.Seed, model.Device);   // multinomial draws on the logits' device
        var results = new List<GeneratedResponse>(rows.Count);
        using var noGrad = no_grad();
        foreach (var chunk in rows.Chunk(settings.MaxBatch))
            results.AddRange(GenerateBatch(model, chunk.Select(r => (r.Prompt, r.Sample, prompts[r.Prompt])).ToList(), settings, generator));
        return results;
    }

    private static List<GeneratedResponse> GenerateBatch(LanguageModel model, List<(int Prompt, int Sample, int[] Ids)> rows, SamplingSettings settings, Generator generator)
    {
        using var scope = NewDisposeScope();
        var device = model.Device;
        var b = rows.Count;
        var p = rows.Max(r => r.Ids.Length);
        // Left padding: every row's last prompt token sits in the last column, so one column of logits serves all.
        var padded = new long[b * p];
        var maskValues = new long[b * p];
        for (var i = 0; i < b; i++)
            for (var j = 0; j < p; j++)
            {
                var k = j - (p - rows[i].Ids.Length);
                padded[i * p + j] = k >= 0 ? rows[i].Ids[k] : settings.PadId;
                maskValues[i * p + j] = k >= 0 ? 1 : 0;
            }
        var sequence = tensor(padded, [b, p], device: device);             // (B, P + step)
        var mask = tensor(maskValues, [b, p], device: device);             // (B, P + step): 1 real, 0 pad
        using var cache = settings.UseCache ? model.NewCache(b, p + settings.MaxNewTokens) : null;

        var ids = rows.Select(_ => new List<int>()).ToArray();
        var logProbs = rows.Select(_ => new List<float>()).ToArray();
        var stopped = new (int Id, float LogProb)?[b];
        var stopIds = settings.StopIds.ToHashSet();
        for (var step = 0; step < settings.MaxNewTokens && stopped.Any(s => s is null); step++)
        {
            using var stepScope = NewDisposeScope();
            // With a cache the first step feeds the whole prompt, every later step only the newest token.
            var fed = cache is null || step == 0 ? sequence.shape[1] : 1;
            var input = sequence.narrow(1, sequence.shape[1] - fed, fed);           // (B, fed)
            // Positions come from the mask (HF's cumsum(mask) - 1): each row's real tokens count from 0.
            var logits = model.forward(input, mask, cache: cache).select(1, -1).to_type(ScalarType.Float32);   // (B, V)
            var next = Pick(logits, settings, generator);                            // (B, 1)
            var nextLogProb = F.log_softmax(logits, -1).gather(1, next);             // (B, 1)
            var nextIds = next.cpu().data<long>().ToArray();
            var nextLogProbs = nextLogProb.cpu().data<float>().ToArray();
            for (var i = 0; i < b; i++)
            {
                if (stopped[i] is not null) continue;
                var id = (int)nextIds[i];
                if (stopIds.Contains(id)) stopped[i] = (id, nextLogProbs[i]);
                else { ids[i].Add(id); logProbs[i].Add(nextLogProbs[i]); }
            }
            // Rows that have stopped keep running (their tokens are ignored): each row attends to itself only.
            sequence = cat([sequence, next], 1).MoveToOuterDisposeScope();
            mask = cat([mask, ones_like(next)], 1).MoveToOuterDisposeScope();
        }
        return rows.Select((r, i) => new GeneratedResponse(r.Prompt, r.Sample, ids[i].ToArray(), logProbs[i].ToArray(),
            stopped[i] is null ? FinishReason.Length : FinishReason.Stop, stopped[i]?.Id, stopped[i]?.LogProb)).ToList();
    }

    /// <summary>
    /// The next token of each row: argmax at temperature 0; else a draw from softmax(logits / T) restricted to the
    /// top k and to the nucleus of mass top_p (HF's TopKLogitsWarper and TopPLogitsWarper). logits (B, V) -> (B, 1).
    /// </summary>
    public static Tensor Pick(Tensor logits, SamplingSettings settings, Generator generator)
    {
        using var scope = NewDisposeScope();
        if (settings.Temperature == 0) return logits.argmax(-1, keepdim: true).MoveToOuterDisposeScope();
        var scaled = logits / settings.Temperature;                                          // (B, V)
        var v = scaled.shape[1];
        if (settings.TopK > 0 && settings.TopK < v)
        {
            var kth = scaled.topk(settings.TopK, -1).values.narrow(1, settings.TopK - 1, 1);  // (B, 1)
            scaled = scaled.masked_fill(scaled.lt(kth), float.NegativeInfinity);
        }
        if (settings.TopP < 1)
        {
            var (sorted, order) = scaled.sort(-1, descending: true);                          // (B, V) each
            var probs = F.softmax(sorted, -1);
            // Drop a token when the tokens ranked above it already reach top_p; the most likely one always stays.
            var drop = (probs.cumsum(-1) - probs).gt(settings.TopP);
            var dropped = zeros_like(drop).scatter(1, order, drop);                           // back to vocabulary order
            scaled = scaled.masked_fill(dropped, float.NegativeInfinity);
        }
        return multinomial(F.softmax(scaled, -1), 1, replacement: true, generator: generator).MoveToOuterDisposeScope();
    }
}

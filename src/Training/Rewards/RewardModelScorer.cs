using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using static TorchSharp.torch;

namespace PrefTune.Training.Rewards;

/// <summary>
/// A learned reward model r_phi(x, y): a sequence-classification language model (HF's <c>...ForSequenceClassification</c>)
/// read at the last real token of prompt + response, label 0. Rollouts are scored in left-padded batches.
/// <para>
/// What it reads. The trailing stop token of a stopped response is left out: the reward model scores the content. A
/// reward model that learned "shorter is better" should see the response, and the stop token is the policy's control
/// token (which id it is depends on the policy's tokenizer, not on the text), so a Stop rollout and a truncated one
/// with the same content get the same reward, as the gold length reward treats them (<see cref="RolloutLengths.ContentLength"/>).
/// </para>
/// <para>
/// Whose ids. When the reward model has a tokenizer and it is not the policy's (compared by the files' SHA-256, so a
/// copy elsewhere counts as the same), the rollout's ids are decoded to text with the policy's tokenizer and the text
/// encoded with the reward model's own. Otherwise (the same file, no tokenizer on either side) the policy's ids are read
/// as they are, and each must fall inside the reward model's vocabulary.
/// </para>
/// Not thread-safe and libtorch work: callers hold <see cref="TorchRuntime.Work"/> (the Scorer does).
/// </summary>
public sealed class RewardModelScorer : IDisposable
{
    /// <summary>Rollouts per forward pass: bounds the activations (B, T, C) of long batches.</summary>
    public const int MaxBatch = 16;

    /// <summary>Policy tokenizers kept loaded (a Scorer serves a few runs at a time).</summary>
    private const int MaxPolicyTokenizers = 4;

    private readonly LanguageModel _model;
    private readonly ITextTokenizer? _tokenizer;
    private readonly string? _tokenizerHash;
    private readonly long _padId;
    private readonly Dictionary<(string Path, DateTime Written, long Length), PolicyTokenizer> _policyTokenizers = [];

    private sealed record PolicyTokenizer(string Hash, Lazy<ITextTokenizer> Tokenizer, long Used);

    private RewardModelScorer(RewardModelSpec spec, LanguageModel model, ITextTokenizer? tokenizer, string? tokenizerFile)
    {
        Spec = spec;
        _model = model;
        _tokenizer = tokenizer;
        _tokenizerHash = tokenizerFile is null ? null : Sha256(tokenizerFile);
        // Pads are masked out, so any id in the vocabulary serves; config.json's pad_token_id where it names one.
        _padId = model.Config.PadTokenId ?? 0;
    }

    public RewardModelSpec Spec { get; }
    public LanguageModelConfig Config => _model.Config;

    /// <summary>Loads the classifier named by <paramref name="spec"/> and its tokenizer (spec.Tokenizer, else the model
    /// directory's tokenizer.json if it has one, else none: the policy's ids are read as they are).</summary>
    /// <exception cref="ArgumentException">The model cannot be read or is not a sequence classifier (reward_model.path), the
    /// tokenizer cannot be read or does not fit (reward_model.tokenizer), or the device (reward_model.device); the
    /// loader's message names the file and tensor.</exception>
    public static RewardModelScorer Load(RewardModelSpec spec)
    {
        Device device;
        try { device = ComputeDevice.Resolve(spec.Device); }
        catch (ArgumentException e) { throw new ArgumentException($"reward_model.device: {e.Message}", e); }
        LanguageModelConfig config;
        try { config = Checkpoints.ReadConfig(spec.Path); }   // header only: a causal LM is refused before its weights are read
        catch (ModelLoadException e) { throw new ArgumentException($"reward_model.path: {e.Message}", e); }
        if (config.Head != ModelHead.SequenceClassification)
            throw new ArgumentException($"reward_model.path: {spec.Path}: {config.Architecture} is not a sequence classifier (a reward model is a ...ForSequenceClassification)");
        var tokenizerFile = TokenizerFile(spec);
        ITextTokenizer? tokenizer = null;
        LanguageModel? model = null;
        try
        {
            if (tokenizerFile is not null)
            {
                try
                {
                    tokenizer = TextTokenizers.Load(tokenizerFile);
                    TokenizerChecks.EnsureFits(tokenizer, config, tokenizerFile);
                }
                catch (ModelLoadException e) { throw new ArgumentException($"reward_model.tokenizer: {e.Message}", e); }
            }
            try { model = Checkpoints.Load(spec.Path, device); }
            catch (ModelLoadException e) { throw new ArgumentException($"reward_model.path: {e.Message}", e); }
            model.eval();
            return new RewardModelScorer(spec, model, tokenizer, tokenizerFile);
        }
        catch
        {
            tokenizer?.Dispose();
            model?.Dispose();
            throw;
        }
    }

    /// <summary>The reward model's tokenizer file: the one named, else the model directory's tokenizer.json, else null.</summary>
    public static string? TokenizerFile(RewardModelSpec spec)
    {
        if (spec.Tokenizer != "") return Directory.Exists(spec.Tokenizer) ? Path.Combine(spec.Tokenizer, "tokenizer.json") : spec.Tokenizer;
        var beside = Path.Combine(spec.Path, "tokenizer.json");
        return Directory.Exists(spec.Path) && File.Exists(beside) ? beside : null;
    }

    /// <summary>r_phi of each rollout, in order: label 0's score at the last real token of what <see cref="Inputs"/> gives.</summary>
    /// <param name="policyTokenizerFile">The policy's tokenizer file; null when the policy has none (the bandit's action ids).</param>
    public IReadOnlyList<double> Score(IReadOnlyList<Rollout> rollouts, string? policyTokenizerFile) =>
        ScoreIds(Inputs(rollouts, policyTokenizerFile));

    /// <summary>The token ids the reward model reads for each rollout (prompt + content, in its own vocabulary).</summary>
    /// <exception cref="ArgumentException">An id outside the vocabulary with no tokenizer to translate it, or too long a
    /// sequence (the sample and the field named).</exception>
    public IReadOnlyList<int[]> Inputs(IReadOnlyList<Rollout> rollouts, string? policyTokenizerFile)
    {
        // Without a tokenizer of its own the reward model can only read the ids: the policy's tokenizer is not needed.
        var policy = policyTokenizerFile is null || _tokenizer is null ? null : PolicyTokenizerOf(policyTokenizerFile);
        var translate = _tokenizer is not null && policy is not null && policy.Hash != _tokenizerHash;
        return rollouts.Select(rollout =>
        {
            int[] content = [.. rollout.ResponseTokens.Take(rollout.ContentLength())];   // the stop token left out (see the class comment)
            int[] ids = [.. rollout.PromptTokens, .. content];
            if (translate)
            {
                // Decoded as one sequence, not prompt and response apart: SentencePiece-style decoders drop the leading
                // space of a sequence's first piece, which would glue the response's first word to the prompt.
                var text = policy!.Tokenizer.Value.Decode(ids);
                ids = _tokenizer!.Encode(text);
            }
            else if (Array.FindIndex(ids, id => id < 0 || id >= Config.VocabSize) is var bad and >= 0)
            {
                throw new ArgumentException($"reward_model.tokenizer: sample {rollout.SampleId}: token id {ids[bad]} is outside {Config.Architecture}'s vocabulary of "
                    + $"{Config.VocabSize}, and no tokenizer translates the policy's ids (name the reward model's own tokenizer, different from the policy's)");
            }
            if (ids.Length == 0)
                throw new ArgumentException($"reward_model: sample {rollout.SampleId}: prompt and response give no token to score");
            if (ids.Length > Config.MaxPositions)
                throw new ArgumentException($"reward_model.path: sample {rollout.SampleId}: {ids.Length} tokens exceed {Config.Architecture}'s context of {Config.MaxPositions}");
            return ids;
        }).ToList();
    }

    /// <summary>Label 0's score at the last token of each id sequence, in batches of <see cref="MaxBatch"/> padded on the left.</summary>
    public IReadOnlyList<double> ScoreIds(IReadOnlyList<int[]> sequences)
    {
        var rewards = new List<double>(sequences.Count);
        using var noGrad = no_grad();
        foreach (var chunk in sequences.Chunk(MaxBatch))
        {
            using var scope = NewDisposeScope();
            var (b, t) = (chunk.Length, chunk.Max(s => s.Length));
            var ids = new long[b * t];
            var mask = new long[b * t];
            for (var i = 0; i < b; i++)
            {
                var offset = i * t + t - chunk[i].Length;   // left padding: the real tokens end every row
                Array.Fill(ids, _padId, i * t, t - chunk[i].Length);
                for (var j = 0; j < chunk[i].Length; j++) (ids[offset + j], mask[offset + j]) = (chunk[i][j], 1);
            }
            var device = _model.Device;
            var input = tensor(ids, [b, t], device: device);                  // (B, T)
            var attention = tensor(mask, [b, t], device: device);             // (B, T) 1 real, 0 pad; positions from it
            var scores = _model.Scores(input, attention).select(1, 0);       // (B, num_labels) -> (B): label 0
            rewards.AddRange(scores.to_type(ScalarType.Float64).cpu().data<double>().ToArray());
        }
        return rewards;
    }

    private PolicyTokenizer PolicyTokenizerOf(string file)
    {
        if (!File.Exists(file)) throw new ArgumentException($"task.model.tokenizer: no such tokenizer file {file}");
        var info = new FileInfo(file);
        var key = (info.FullName, info.LastWriteTimeUtc, info.Length);
        if (!_policyTokenizers.TryGetValue(key, out var entry))
        {
            if (_policyTokenizers.Count >= MaxPolicyTokenizers)
            {
                var oldest = _policyTokenizers.MinBy(e => e.Value.Used);
                if (oldest.Value.Tokenizer.IsValueCreated) oldest.Value.Tokenizer.Value.Dispose();
                _policyTokenizers.Remove(oldest.Key);
            }
            // Loaded only when the ids are translated: with the same file the hash alone decides.
            entry = new PolicyTokenizer(Sha256(file), new Lazy<ITextTokenizer>(() => TextTokenizers.Load(file)), 0);
        }
        _policyTokenizers[key] = entry = entry with { Used = _policyTokenizers.Count == 0 ? 1 : _policyTokenizers.Values.Max(e => e.Used) + 1 };
        return entry;
    }

    private static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    public void Dispose()
    {
        _model.Dispose();
        _tokenizer?.Dispose();
        foreach (var entry in _policyTokenizers.Values)
            if (entry.Tokenizer.IsValueCreated) entry.Tokenizer.Value.Dispose();
        _policyTokenizers.Clear();
    }
}

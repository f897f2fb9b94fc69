using System.Globalization;
using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks;
using static TorchSharp.torch;

namespace PrefTune.Training.Policies;

/// <summary>
/// A causal language model as a policy, with a value head for token-level methods (PPO): V(x, y_&lt;t) = w . h + b on
/// the backbone's last hidden state h (after the final norm, what the LM head reads), registered as its own submodule
/// <c>value_head</c> beside <c>lm</c>. Its weights serialize like every policy's (TorchSharp's state-dict format,
/// deterministic bytes, keys <c>lm.</c> + Hugging Face's names, and <c>value_head.weight</c>/<c>.bias</c>);
/// <c>preftune export</c> writes only <c>lm</c> as a Hugging Face directory (a value head is no part of a causal LM).
/// </summary>
/// <remarks>
/// The value head starts at zero, not seeded: the pretrained model is loaded, not drawn, so there is no seed to keep
/// apart; V = 0 everywhere until PPO's value loss trains it (no random value scale to unlearn, as the GPT bandit's), and
/// the LM's weights are untouched, so version 0 samples exactly as the reference does. While the head is exactly zero
/// (every method but a token-level one never gives it a gradient) it is left out of <see cref="SaveWeights"/>'s bytes
/// and <see cref="LoadWeights"/> reads its absence as zero: the checkpoints of every other method, and of runs recorded
/// before the head existed, keep the bytes and hashes they had, so their replays still match.
/// </remarks>
public sealed class LanguageModelPolicy : PolicyModel
{
    private static readonly string[] ValueHeadKeys = ["value_head.weight", "value_head.bias"];
    private readonly TorchSharp.Modules.Linear value_head;   // C -> 1: V(x, y_<t) from the hidden state that predicts y_t

    public LanguageModelPolicy(LanguageModel model) : base("lm_policy")
    {
        Model = model;
        register_module("lm", model);
        // Linear's init draws from the global generator: put its state back, so building a policy changes no later draw.
        using (var rng = get_rng_state())
        {
            value_head = nn.Linear(model.Config.HiddenSize, 1, device: model.Device);
            set_rng_state(rng);
        }
        using (no_grad())
        {
            nn.init.zeros_(value_head.weight!);
            nn.init.zeros_(value_head.bias!);
        }
        register_module("value_head", value_head);
    }

    public LanguageModel Model { get; }

    /// <summary>The value head: hidden (..., C) -> V (...,), float32.</summary>
    public Tensor Value(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return value_head.forward(hidden.to_type(ScalarType.Float32)).squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>Whether the value head is exactly zero (as built, and as every non-token-level method leaves it).</summary>
    public bool ValueHeadIsZero
    {
        get
        {
            using var scope = NewDisposeScope();
            return value_head.weight!.count_nonzero().item<long>() == 0 && value_head.bias!.count_nonzero().item<long>() == 0;
        }
    }

    /// <summary>The state dict's bytes; the value head only once it is non-zero (see the remarks).</summary>
    public override void SaveWeights(Stream destination)
    {
        using var writer = new BinaryWriter(destination, System.Text.Encoding.UTF8, leaveOpen: true);
        save(writer, skip: ValueHeadIsZero ? ValueHeadKeys : null);
    }

    /// <summary>Loads <see cref="SaveWeights"/> bytes: every <c>lm.</c> tensor must be there; an absent value head is zero.</summary>
    /// <exception cref="ArgumentException">The bytes miss a tensor of the model or name one it does not have.</exception>
    public override void LoadWeights(Stream weights)
    {
        using (no_grad())
        {
            nn.init.zeros_(value_head.weight!);   // what an absent head means; overwritten when the bytes hold it
            nn.init.zeros_(value_head.bias!);
        }
        var loaded = new Dictionary<string, bool>();
        using (var reader = new BinaryReader(weights, System.Text.Encoding.UTF8, leaveOpen: true))
            load(reader, strict: false, loadedParameters: loaded);
        MixedPrecision.WeightsChanged(parameters());
        var expected = state_dict().Keys.ToList();
        var missing = expected.Where(k => !ValueHeadKeys.Contains(k) && !loaded.GetValueOrDefault(k)).ToList();
        var unknown = loaded.Keys.Where(k => !expected.Contains(k)).ToList();
        if (missing.Count > 0 || unknown.Count > 0)
            throw new ArgumentException($"the weights do not fit this language model: {missing.Count} tensors missing ({string.Join(", ", missing.Take(3))}), "
                + $"{unknown.Count} unknown ({string.Join(", ", unknown.Take(3))})", nameof(weights));
    }
}

/// <summary>
/// The policy family of a pretrained causal LM (Llama or GPT-NeoX, a Hugging Face directory or a llama2.c checkpoint,
/// <see cref="LanguageModelSpec"/>): generation is <see cref="TextGeneration"/> (batched over prompts and C responses,
/// KV cache, left padding, stop ids), scoring is <see cref="LanguageModels.SequenceLogProbs"/>. The reference is the
/// loaded model itself: there is nothing to fit. A response that stopped ends with its stop token, which is scored
/// like every other token, so pi(y|x) includes the decision to stop (what a length reward trains).
/// </summary>
public sealed class LanguageModelFamily(LanguageModelSpec spec) : IPolicyFamily
{
    public static PolicyKind Descriptor { get; } = new()
    {
        Name = "lm",
        Summary = "a pretrained causal language model (Llama or GPT-NeoX/Pythia; a Hugging Face directory or a llama2.c checkpoint)",
        Tasks = ["length", "preference"],
        Create = task => new LanguageModelFamily(task.Model ?? new LanguageModelSpec()),
        Footprint = task => Footprint(task.Model ?? new LanguageModelSpec()),
        ScoresTokens = true,   // the value head on LanguageModelPolicy
    };

    public LanguageModelSpec Spec => spec;

    /// <summary>The model loaded from <see cref="LanguageModelSpec.Path"/> onto its device; the seed is not used (the
    /// weights are the checkpoint's).</summary>
    public PolicyModel CreatePolicy(int seed) =>
        new LanguageModelPolicy(Checkpoints.Load(spec.Path, ComputeDevice.Resolve(spec.Device)));

    /// <summary>A pretrained model is its own reference: nothing is fitted, the fit loss is 0.</summary>
    public double FitReference(PolicyModel policy, int seed) => 0;

    /// <summary>C responses per prompt, group-major, from one batched call; each response carries its per-token
    /// log-probs at temperature 1 and, when it stopped, the stop token and its log-prob last.</summary>
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId)
    {
        var model = ModelOf(policy);
        var responses = TextGeneration.Generate(model, prompts.Select(p => p.Tokens).ToList(), new SamplingSettings
        {
            MaxNewTokens = spec.MaxNewTokens, Temperature = temperature, TopK = spec.TopK, TopP = spec.TopP,
            StopIds = StopIdsOf(spec, model.Config), Samples = responsesPerPrompt, MaxBatch = spec.MaxBatch, Seed = seed,
            PadId = PadId(model),
        });
        return responses.Select((r, i) => new Rollout
        {
            SampleId = SampleIds.Of(batchId, i),
            PromptId = prompts[r.Prompt].PromptId,
            Group = r.Prompt,
            PromptTokens = [.. prompts[r.Prompt].Tokens],
            ResponseTokens = r.StopId is { } stop ? [.. r.Ids, stop] : r.Ids,
            TokenLogProbs = r.StopLogProb is { } stopLogProb ? [.. r.LogProbs, stopLogProb] : r.LogProbs,
            PolicyVersion = policyVersion,
            Finish = r.Finish,
        }).ToList();
    }

    /// <summary>log pi(y|x) of each rollout, the masked sum over its response tokens: [N], with grad when the policy has it.
    /// In the spec's precision (the learner's scoring and training, and the Sampler's reference log-probs: every score the
    /// losses compare is made the same way), while <see cref="Generate"/> stays float32.</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var model = ModelOf(policy);
        using var precision = MixedPrecision.Use(spec.Precision);
        return LanguageModels.SequenceLogProbs.Sum(model, rollouts.Select(r => new TokenSequence(r.PromptTokens, r.ResponseTokens)).ToList(), PadId(model));
    }

    /// <summary>
    /// The per-token view PPO needs, from one forward pass over the packed batch (<see cref="LanguageModels.SequenceLogProbs.Pack"/>):
    /// log pi(y_t | x, y_&lt;t) of every response token, the same numbers SequenceLogProbs' token scores are, and the value
    /// head's V(x, y_&lt;t) read from the hidden state at column P + t - 1, the one whose logits score y_t (the state in which
    /// y_t is chosen; TRL's values[:, context_length - 1 : -1]). [N, R] each, R the longest response, zero past each
    /// response's end; with grad when the policy has it.
    /// </summary>
    public TokenScores ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var lm = policy as LanguageModelPolicy
            ?? throw new ArgumentException($"a language-model policy expected, got {policy.GetType().Name}", nameof(policy));
        using var scope = NewDisposeScope();
        using var precision = MixedPrecision.Use(spec.Precision);   // as SequenceLogProbs
        var batch = LanguageModels.SequenceLogProbs.Pack(lm.Model, rollouts.Select(r => new TokenSequence(r.PromptTokens, r.ResponseTokens)).ToList(), PadId(lm.Model));
        var (p, r) = (batch.PromptColumns, batch.ResponseColumns);
        var (logits, hidden) = lm.Model.ForwardWithHidden(batch.Ids, batch.AttentionMask);            // (N, P + R, V), (N, P + R, C)
        var logProbs = LanguageModels.SequenceLogProbs.FromLogits(logits, batch, tokens: true).Tokens!;   // (N, R), 0 past the end
        var values = lm.Value(hidden.narrow(1, p - 1, r)) * batch.ResponseMask;                       // (N, R), 0 past the end
        return new TokenScores(logProbs.MoveToOuterDisposeScope(), values.MoveToOuterDisposeScope());
    }

    /// <summary>The ids that end a response: the spec's, "none" for none, or the model's own when the spec leaves it empty.</summary>
    /// <exception cref="ArgumentException">Not a list of ids within the vocabulary (names task.model.stop_ids).</exception>
    public static IReadOnlyList<int> StopIdsOf(LanguageModelSpec spec, LanguageModelConfig config)
    {
        var text = spec.StopIds.Trim();
        if (text == "") return config.StopIds;
        if (text.Equals("none", StringComparison.OrdinalIgnoreCase)) return [];
        var ids = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) || id < 0 || id >= config.VocabSize)
                throw new ArgumentException($"task.model.stop_ids: '{part}' is not a token id of the model's vocabulary 0..{config.VocabSize - 1} "
                    + "(write ids separated by commas, e.g. \"1\" or \"0,2\", or none)");
            ids.Add(id);
        }
        return ids;
    }

    /// <summary>
    /// Memory from the model's config alone (config.json or the llama2.c header; no weight is read): its parameters, and
    /// per rollout of max_new_tokens + a 64-token prompt the activations a gradient step keeps (about 16 C + 2 heads x T
    /// numbers per position and layer, and 3 V for the logits and their gradient) or what sampling holds (the KV cache,
    /// 2 C per position and layer, and V logits). Null when the config cannot be read: the run's checks say why.
    /// </summary>
    public static TaskFootprint? Footprint(LanguageModelSpec spec)
    {
        LanguageModelConfig config;
        try { config = Checkpoints.ReadConfig(spec.Path); }
        catch (ModelLoadException) { return null; }
        double c = config.HiddenSize, v = config.VocabSize, layers = config.Layers, positions = 64 + spec.MaxNewTokens;
        var kv = (double)config.KvHeads * config.HeadDim;
        var perLayer = c * (config.Heads * config.HeadDim) * 2 + c * kv * 2 + 3 * c * config.IntermediateSize + 2 * c;
        return new TaskFootprint
        {
            Weights = layers * perLayer + v * c * (config.TieWordEmbeddings ? 1 : 2),
            WeightFields = [new("path", 0)],
            TokensPerRollout = positions,
            TrainingNumbersPerSample = positions * (layers * (16 * c + 2 * config.Heads * positions) + 3 * v),
            InferenceNumbersPerSample = positions * (layers * 2 * kv + v),
            SampleFields = [new("max_new_tokens", spec.MaxNewTokens)],
        };
    }

    private static int PadId(LanguageModel model) => model.Config.PadTokenId ?? 0;

    private static LanguageModel ModelOf(PolicyModel policy) => (policy as LanguageModelPolicy)?.Model
        ?? throw new ArgumentException($"a language-model policy expected, got {policy.GetType().Name}", nameof(policy));
}

using System.Globalization;
using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks;
using static TorchSharp.torch;

namespace PrefTune.Training.Policies;

/// <summary>A causal language model as a policy: its weights serialize like every policy's (TorchSharp's state-dict
/// format, deterministic bytes, keys <c>lm.</c> + Hugging Face's names); <c>preftune export</c> writes them as a Hugging
/// Face directory.</summary>
public sealed class LanguageModelPolicy : PolicyModel
{
    public LanguageModelPolicy(LanguageModel model) : base("lm_policy")
    {
        Model = model;
        register_module("lm", model);
    }

    public LanguageModel Model { get; }
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
        Task = "length",
        Create = task => new LanguageModelFamily(task.Model ?? new LanguageModelSpec()),
        Footprint = task => Footprint(task.Model ?? new LanguageModelSpec()),
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

    /// <summary>log pi(y|x) of each rollout, the masked sum over its response tokens: [N], with grad when the policy has it.</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var model = ModelOf(policy);
        return LanguageModels.SequenceLogProbs.Sum(model, rollouts.Select(r => new TokenSequence(r.PromptTokens, r.ResponseTokens)).ToList(), PadId(model));
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

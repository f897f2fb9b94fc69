using System.Text.Json.Nodes;

namespace PrefTune.Training.LanguageModels;

/// <summary>The two transformer families PrefTune implements (one file each: Llama.cs, GptNeoX.cs).</summary>
public enum ModelFamily { Llama, GptNeoX }

/// <summary>What sits on top of the backbone: next-token logits, or HF's <c>score</c> head read at the last real token.</summary>
public enum ModelHead { CausalLm, SequenceClassification }

/// <summary>
/// The sizes and switches of one language model, read from a Hugging Face <c>config.json</c> (HF's field names
/// in the comments) or from a llama2.c header. <see cref="HfConfig"/> keeps the file's own JSON, so that a saved
/// model's config.json carries every field the user's other tools read.
/// </summary>
public sealed record LanguageModelConfig
{
    /// <summary>HF class name, <c>architectures[0]</c>: LlamaForCausalLM, GPTNeoXForSequenceClassification, ...</summary>
    public required string Architecture { get; init; }
    public required ModelFamily Family { get; init; }
    public required ModelHead Head { get; init; }
    /// <summary>vocab_size V.</summary>
    public required int VocabSize { get; init; }
    /// <summary>hidden_size C.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>intermediate_size: the MLP's inner width.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>num_hidden_layers.</summary>
    public required int Layers { get; init; }
    /// <summary>num_attention_heads nh.</summary>
    public required int Heads { get; init; }
    /// <summary>num_key_value_heads (Llama's grouped-query attention; GPT-NeoX: = Heads).</summary>
    public required int KvHeads { get; init; }
    /// <summary>head_dim hs (default C / nh).</summary>
    public required int HeadDim { get; init; }
    /// <summary>max_position_embeddings: the longest prompt + response.</summary>
    public required int MaxPositions { get; init; }
    /// <summary>rms_norm_eps (Llama) or layer_norm_eps (GPT-NeoX).</summary>
    public required double NormEps { get; init; }
    /// <summary>rope_theta (Llama) or rotary_emb_base (GPT-NeoX).</summary>
    public required double RopeTheta { get; init; }
    /// <summary>The rotated dims of each head: hs for Llama, int(hs * rotary_pct) for GPT-NeoX.</summary>
    public required int RotaryDims { get; init; }
    /// <summary>GPT-NeoX use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)) instead of two sequential residuals.</summary>
    public bool ParallelResidual { get; init; }
    /// <summary>Llama attention_bias (q, k, v, o projections); GPT-NeoX always has biases.</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Llama mlp_bias.</summary>
    public bool MlpBias { get; init; }
    /// <summary>tie_word_embeddings: the output head is the token embedding.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>num_labels of a sequence-classification head (1 for a reward model).</summary>
    public int NumLabels { get; init; } = 1;
    public int? BosTokenId { get; init; }
    /// <summary>eos_token_id (an int or a list in config.json).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>
    /// The ids that end a response, a model setting: generation_config.json's eos_token_id when the directory has
    /// one, else config.json's; a llama2.c checkpoint ends on BOS (1), as run.c does.
    /// </summary>
    public IReadOnlyList<int> StopIds { get; init; } = [];
    /// <summary>The config.json this was read from (or the one written for a llama2.c checkpoint).</summary>
    public required JsonObject HfConfig { get; init; }

    /// <summary>An id field that config.json and generation_config.json write as an int or a list of ints.</summary>
    public static int[] TokenIds(JsonNode? node) => node switch
    {
        JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
        JsonValue v => [v.GetValue<int>()],
        _ => [],
    };

    /// <summary>Reads a Hugging Face config.json; an architecture or setting PrefTune does not implement fails here.</summary>
    public static LanguageModelConfig FromHfConfig(JsonObject json, string file)
    {
        var architecture = (json["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>()
            ?? throw new ModelLoadException(file, null, "no 'architectures' entry: cannot tell which model class it is");
        var (family, head) = architecture switch
        {
            "LlamaForCausalLM" => (ModelFamily.Llama, ModelHead.CausalLm),
            "LlamaForSequenceClassification" => (ModelFamily.Llama, ModelHead.SequenceClassification),
            "GPTNeoXForCausalLM" => (ModelFamily.GptNeoX, ModelHead.CausalLm),
            "GPTNeoXForSequenceClassification" => (ModelFamily.GptNeoX, ModelHead.SequenceClassification),
            _ => throw new ModelLoadException(file, null,
                $"unknown architecture '{architecture}' (PrefTune implements LlamaForCausalLM, LlamaForSequenceClassification, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification)"),
        };
        int Int(string key) => json[key]?.GetValue<int>() ?? throw new ModelLoadException(file, null, $"'{key}' is missing");
        int? OptionalInt(string key) => json[key] is JsonValue v ? v.GetValue<int>() : null;
        double Real(string key, double fallback) => json[key] is JsonValue v ? v.GetValue<double>() : fallback;
        bool Flag(string key, bool fallback) => json[key] is JsonValue v ? v.GetValue<bool>() : fallback;

        if (json["rope_scaling"] is JsonObject)
            throw new ModelLoadException(file, null, "'rope_scaling' is set: scaled rotary embeddings are not implemented");
        var act = json["hidden_act"]?.GetValue<string>();
        var expectedAct = family == ModelFamily.Llama ? "silu" : "gelu";
        if (act is not null && act != expectedAct)
            throw new ModelLoadException(file, null, $"hidden_act '{act}' is not implemented for {architecture} (only '{expectedAct}')");

        var hidden = Int("hidden_size");
        var heads = Int("num_attention_heads");
        var headDim = OptionalInt("head_dim") ?? hidden / heads;
        var eos = TokenIds(json["eos_token_id"]);
        var numLabels = json["num_labels"] is JsonValue n ? n.GetValue<int>() : (json["id2label"] as JsonObject)?.Count ?? 2;
        return new LanguageModelConfig
        {
            Architecture = architecture,
            Family = family,
            Head = head,
            VocabSize = Int("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Int("intermediate_size"),
            Layers = Int("num_hidden_layers"),
            Heads = heads,
            KvHeads = family == ModelFamily.Llama ? OptionalInt("num_key_value_heads") ?? heads : heads,
            HeadDim = headDim,
            MaxPositions = Int("max_position_embeddings"),
            NormEps = family == ModelFamily.Llama ? Real("rms_norm_eps", 1e-6) : Real("layer_norm_eps", 1e-5),
            RopeTheta = family == ModelFamily.Llama ? Real("rope_theta", 10000) : Real("rotary_emb_base", 10000),
            RotaryDims = family == ModelFamily.Llama ? headDim : (int)(headDim * Real("rotary_pct", 0.25)),
            ParallelResidual = Flag("use_parallel_residual", true),
            AttentionBias = Flag("attention_bias", family == ModelFamily.GptNeoX),
            MlpBias = Flag("mlp_bias", family == ModelFamily.GptNeoX),
            TieWordEmbeddings = Flag("tie_word_embeddings", false),   // LlamaConfig and GPTNeoXConfig both default to untied
            NumLabels = numLabels,
            BosTokenId = OptionalInt("bos_token_id"),
            EosTokenIds = eos,
            PadTokenId = OptionalInt("pad_token_id"),
            StopIds = eos,
            HfConfig = json,
        };
    }
}

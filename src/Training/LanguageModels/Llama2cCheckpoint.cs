using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// Karpathy's llama2.c checkpoint (the "v0" format run.c reads): 7 little-endian int32 (dim, hidden_dim, n_layers,
/// n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is not shared), then float32
/// arrays in run.c's order: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, two unused
/// RoPE tables of seq_len x head_size/2 each, then wcls when unshared. Loaded as a Hugging Face Llama: the same
/// tensors under HF's names, with wq and wk rows permuted (below).
/// </summary>
public static class Llama2cCheckpoint
{
    /// <summary>run.c ends a sample when the model emits BOS (id 1): the stop token of this format.</summary>
    public const int StopId = 1;

    /// <summary>The model's config from the file's header alone (no weight is read).</summary>
    public static LanguageModelConfig ReadConfig(string file)
    {
        using var stream = File.OpenRead(file);
        using var reader = new BinaryReader(stream);
        var (h, _) = Header(reader, stream, file);
        return ConfigFor(h[0], h[1], h[2], h[3], h[4], Math.Abs(h[5]), h[6], h[5] > 0);
    }

    /// <summary>The 7 int32 of the header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), checked;
    /// a negative vocab_size means an untied head.</summary>
    private static (int[] Header, bool Shared) Header(BinaryReader reader, Stream stream, string file)
    {
        if (stream.Length < 28) throw new ModelLoadException(file, null, "too short for a llama2.c header (7 int32)");
        var h = Enumerable.Range(0, 7).Select(_ => reader.ReadInt32()).ToArray();
        if (h.Take(5).Any(x => x < 1) || h[5] == 0 || h[6] < 1 || h[0] % h[3] != 0 || h[3] % h[4] != 0)
            throw new ModelLoadException(file, null, $"header [{string.Join(", ", h)}] is not a llama2.c config (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len)");
        return (h, h[5] > 0);
    }

    public static LanguageModel Load(string file)
    {
        using var stream = File.OpenRead(file);
        using var reader = new BinaryReader(stream);
        var (h, shared) = Header(reader, stream, file);
        var (dim, hidden, layers, heads, kvHeads, vocab, seqLen) = (h[0], h[1], h[2], h[3], h[4], Math.Abs(h[5]), h[6]);
        var headDim = dim / heads;
        var config = ConfigFor(dim, hidden, layers, heads, kvHeads, vocab, seqLen, shared);

        // run.c's order: (HF name pattern, rows, cols) per array; one array holds every layer's matrix.
        var kv = kvHeads * headDim;
        var layout = new List<(string Name, long Rows, long Cols, bool PerLayer)>
        {
            ("model.embed_tokens.weight", vocab, dim, false),
            ("model.layers.{0}.input_layernorm.weight", 1, dim, true),
            ("model.layers.{0}.self_attn.q_proj.weight", dim, dim, true),
            ("model.layers.{0}.self_attn.k_proj.weight", kv, dim, true),
            ("model.layers.{0}.self_attn.v_proj.weight", kv, dim, true),
            ("model.layers.{0}.self_attn.o_proj.weight", dim, dim, true),
            ("model.layers.{0}.post_attention_layernorm.weight", 1, dim, true),
            ("model.layers.{0}.mlp.gate_proj.weight", hidden, dim, true),
            ("model.layers.{0}.mlp.down_proj.weight", dim, hidden, true),
            ("model.layers.{0}.mlp.up_proj.weight", hidden, dim, true),
            ("model.norm.weight", 1, dim, false),
            ("freq_cis_real", seqLen, headDim / 2, false),
            ("freq_cis_imag", seqLen, headDim / 2, false),
        };
        if (!shared) layout.Add(("lm_head.weight", vocab, dim, false));
        var expectedBytes = 28 + 4 * layout.Sum(a => a.Rows * a.Cols * (a.PerLayer ? layers : 1));
        if (stream.Length != expectedBytes)
        {
            var (name, _) = FirstShort(layout, layers, stream.Length);
            throw new ModelLoadException(file, name, $"the file has {stream.Length} bytes; header [{string.Join(", ", h)}] implies {expectedBytes}");
        }

        var model = new LanguageModel(config);
        var state = model.state_dict();
        using var noGrad = no_grad();
        foreach (var (name, rows, cols, perLayer) in layout)
            for (var layer = 0; layer < (perLayer ? layers : 1); layer++)
            {
                using var scope = NewDisposeScope();
                var data = new float[rows * cols];
                var bytes = reader.ReadBytes(data.Length * 4);
                Buffer.BlockCopy(bytes, 0, data, 0, bytes.Length);
                if (name.StartsWith("freq_cis", StringComparison.Ordinal)) continue;   // recomputed from theta
                var hfName = string.Format(System.Globalization.CultureInfo.InvariantCulture, name, layer);
                var target = state[hfName];
                var weight = tensor(data).view(target.shape);
                if (hfName.EndsWith("q_proj.weight", StringComparison.Ordinal)) weight = ToRotateHalf(weight, heads, headDim);
                if (hfName.EndsWith("k_proj.weight", StringComparison.Ordinal)) weight = ToRotateHalf(weight, kvHeads, headDim);
                target.copy_(weight);
            }
        return model;
    }

    /// <summary>
    /// llama2.c rotates interleaved pairs (2j, 2j+1) of each head; HF rotates (j, j + hs/2) (rotate_half). Reordering
    /// each head's rows of wq and wk makes one the other: HF row h*hs + half*hs/2 + j = llama2.c row h*hs + 2j + half.
    /// w: (heads * hs, C) -> (heads * hs, C).
    /// </summary>
    public static Tensor ToRotateHalf(Tensor w, int heads, int headDim) =>
        w.view(heads, headDim / 2, 2, w.shape[1])   // (h, j, half, C): llama2.c's row 2j + half
            .transpose(1, 2)                          // (h, half, j, C): HF's row half * hs/2 + j
            .reshape(heads * headDim, w.shape[1]);

    /// <summary>The config.json a llama2.c model would have as a Hugging Face Llama (what SaveHf writes).</summary>
    private static LanguageModelConfig ConfigFor(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen, bool shared)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_size"] = dim,
            ["intermediate_size"] = hidden,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = dim / heads,
            ["vocab_size"] = vocab,
            ["max_position_embeddings"] = seqLen,
            ["rms_norm_eps"] = 1e-5,      // run.c's rmsnorm
            ["rope_theta"] = 10000.0,     // run.c's RoPE base
            ["hidden_act"] = "silu",
            ["tie_word_embeddings"] = shared,
            ["bos_token_id"] = 1,
            ["eos_token_id"] = 2,
            ["torch_dtype"] = "float32",
        };
        return LanguageModelConfig.FromHfConfig(json, "llama2.c header") with { StopIds = [StopId] };
    }

    /// <summary>The first array that does not fit in a file of <paramref name="length"/> bytes, to name in the error.</summary>
    private static (string Name, long End) FirstShort(List<(string Name, long Rows, long Cols, bool PerLayer)> layout, int layers, long length)
    {
        var end = 28L;
        foreach (var a in layout)
        {
            end += 4 * a.Rows * a.Cols * (a.PerLayer ? layers : 1);
            if (end > length) return (string.Format(System.Globalization.CultureInfo.InvariantCulture, a.Name, "*"), end);
        }
        return ("(after the last array)", end);
    }
}

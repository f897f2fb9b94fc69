using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

// GPT-NeoX / Pythia (Black et al. 2022), as Hugging Face's modeling_gpt_neox.py computes it and names its tensors:
// pre-LayerNorm blocks whose attention has one fused query_key_value projection and rotary embeddings on the first
// rotary_pct of each head, a GELU MLP, and a parallel (or sequential) residual. Field names are HF's state-dict keys
// (gpt_neox.layers.{i}.attention.query_key_value.weight, ...). Shapes: B batch, T tokens of this call, S = cached
// + T keys, C hidden_size, nh heads, hs head size, rd rotary dims, I intermediate_size.

/// <summary>Self-attention with the fused, per-head interleaved query_key_value and partial rotary.</summary>
public sealed class GPTNeoXAttention : nn.Module
{
    private readonly Linear query_key_value;   // C -> 3C, rows grouped per head: [h][q|k|v][hs]
    private readonly Linear dense;             // C -> C
    private readonly int heads, headDim, layer;

    public GPTNeoXAttention(LanguageModelConfig c, int layer) : base(nameof(GPTNeoXAttention))
    {
        (heads, headDim, this.layer) = (c.Heads, c.HeadDim, layer);
        query_key_value = nn.Linear(c.HiddenSize, 3 * heads * headDim, hasBias: c.AttentionBias);
        dense = nn.Linear(heads * headDim, c.HiddenSize, hasBias: c.AttentionBias);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x, AttentionInputs inputs, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var (b, t) = (x.shape[0], x.shape[1]);
        // HF views the 3C outputs as (nh, 3 hs): each head's query, key and value are adjacent, not [all Q; all K; all V].
        var qkv = MixedPrecision.Linear(query_key_value, x).view(b, t, heads, 3 * headDim).permute(0, 2, 1, 3);   // (B, nh, T, 3 hs)
        var q = Attention.Rotate(qkv.narrow(-1, 0, headDim), inputs);                               // (B, nh, T, hs)
        var k = Attention.Rotate(qkv.narrow(-1, headDim, headDim), inputs);                         // (B, nh, T, hs)
        var v = qkv.narrow(-1, 2 * headDim, headDim);                                               // (B, nh, T, hs)
        if (cache is not null)
            (k, v) = cache.Append(layer, k, v, inputs.Start);                                        // (B, nh, S, hs)
        var y = Attention.Attend(q, k, v, inputs);                                                   // (B, T, C)
        return MixedPrecision.Linear(dense, y).MoveToOuterDisposeScope();                                           // (B, T, C)
    }
}

/// <summary>dense_4h_to_h(gelu(dense_h_to_4h(x))), exact (erf) GELU.</summary>
public sealed class GPTNeoXMLP : nn.Module
{
    private readonly Linear dense_h_to_4h;   // C -> I
    private readonly GELU act;
    private readonly Linear dense_4h_to_h;   // I -> C

    public GPTNeoXMLP(LanguageModelConfig c) : base(nameof(GPTNeoXMLP))
    {
        dense_h_to_4h = nn.Linear(c.HiddenSize, c.IntermediateSize);
        act = nn.GELU();
        dense_4h_to_h = nn.Linear(c.IntermediateSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return MixedPrecision.Linear(dense_4h_to_h, act.forward(MixedPrecision.Linear(dense_h_to_4h, x))).MoveToOuterDisposeScope();
    }
}

/// <summary>Parallel: x + attn(ln1(x)) + mlp(ln2(x)). Sequential: h = x + attn(ln1(x)); h + mlp(ln2(h)).</summary>
public sealed class GPTNeoXLayer : nn.Module
{
    private readonly LayerNorm input_layernorm;
    private readonly LayerNorm post_attention_layernorm;
    private readonly GPTNeoXAttention attention;
    private readonly GPTNeoXMLP mlp;
    private readonly bool parallel;

    public GPTNeoXLayer(LanguageModelConfig c, int layer) : base(nameof(GPTNeoXLayer))
    {
        input_layernorm = nn.LayerNorm(c.HiddenSize, c.NormEps);
        post_attention_layernorm = nn.LayerNorm(c.HiddenSize, c.NormEps);
        attention = new GPTNeoXAttention(c, layer);
        mlp = new GPTNeoXMLP(c);
        parallel = c.ParallelResidual;
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x, AttentionInputs inputs, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var attn = attention.forward(input_layernorm.forward(x), inputs, cache);   // (B, T, C)
        var result = parallel
            ? x + attn + mlp.forward(post_attention_layernorm.forward(x))
            : (x + attn) + mlp.forward(post_attention_layernorm.forward(x + attn));
        return result.MoveToOuterDisposeScope();                                   // (B, T, C)
    }
}

/// <summary>HF's GPTNeoXModel: embed_in, the layers, final_layer_norm (registered as <c>gpt_neox</c>).</summary>
public sealed class GPTNeoXModel : DecoderBackbone
{
    private readonly Embedding embed_in;                    // V -> C
    private readonly ModuleList<GPTNeoXLayer> layers;
    private readonly LayerNorm final_layer_norm;
    private readonly Tensor inv_freq;                       // (rd/2), non-persistent (older HF files carry a copy per layer)

    public GPTNeoXModel(LanguageModelConfig c) : base(nameof(GPTNeoXModel), c)
    {
        embed_in = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, c.Layers).Select(i => new GPTNeoXLayer(c, i)).ToArray());
        final_layer_norm = nn.LayerNorm(c.HiddenSize, c.NormEps);
        inv_freq = Attention.InverseFrequencies(c.RotaryDims, c.RopeTheta);
        register_buffer(nameof(inv_freq), inv_freq, persistent: false);
        RegisterComponents();
    }

    public override Tensor TokenEmbedding => embed_in.get_parameter("weight")!;   // the registered object: see DecoderBackbone
    protected override Tensor InvFreq => inv_freq;
    protected override Tensor Embed(Tensor ids) => embed_in.forward(ids);
    protected override Tensor Layer(int layer, Tensor x, AttentionInputs inputs, KvCache? cache) => layers[layer].forward(x, inputs, cache);
    protected override Tensor FinalNorm(Tensor x) => final_layer_norm.forward(x);
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

// Llama (Touvron et al. 2023), as Hugging Face's modeling_llama.py computes it and names its tensors: pre-RMSNorm
// blocks of grouped-query attention with rotary embeddings and a SwiGLU MLP. Field names are HF's state-dict keys
// (model.layers.{i}.self_attn.q_proj.weight, ...). Shapes: B batch, T tokens of this call, S = cached + T keys,
// C hidden_size, nh query heads, nkv key/value heads, hs head_dim, I intermediate_size.

/// <summary>w * x / sqrt(mean(x^2) + eps), in float32 (HF's LlamaRMSNorm).</summary>
public sealed class LlamaRMSNorm : nn.Module
{
    private readonly Parameter weight;   // (C)
    private readonly double eps;

    public LlamaRMSNorm(int width, double eps) : base(nameof(LlamaRMSNorm))
    {
        weight = nn.Parameter(ones(width));
        this.eps = eps;
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.dtype == ScalarType.Float32 ? x : x.to_type(ScalarType.Float32);
        var normed = x32 * rsqrt(x32.pow(2).mean([-1L], keepdim: true) + eps);
        return (weight * (x.dtype == ScalarType.Float32 ? normed : normed.to_type(x.dtype))).MoveToOuterDisposeScope();
    }
}

/// <summary>Grouped-query self-attention with rotary embeddings on the full head.</summary>
public sealed class LlamaAttention : nn.Module
{
    private readonly Linear q_proj;   // C -> nh * hs
    private readonly Linear k_proj;   // C -> nkv * hs
    private readonly Linear v_proj;   // C -> nkv * hs
    private readonly Linear o_proj;   // nh * hs -> C
    private readonly int heads, kvHeads, headDim, layer;

    public LlamaAttention(LanguageModelConfig c, int layer) : base(nameof(LlamaAttention))
    {
        (heads, kvHeads, headDim, this.layer) = (c.Heads, c.KvHeads, c.HeadDim, layer);
        q_proj = nn.Linear(c.HiddenSize, heads * headDim, hasBias: c.AttentionBias);
        k_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: c.AttentionBias);
        v_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: c.AttentionBias);
        o_proj = nn.Linear(heads * headDim, c.HiddenSize, hasBias: c.AttentionBias);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x, AttentionInputs inputs, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var (b, t) = (x.shape[0], x.shape[1]);
        var q = MixedPrecision.Linear(q_proj, x).view(b, t, heads, headDim).transpose(1, 2);     // (B, nh, T, hs)
        var k = MixedPrecision.Linear(k_proj, x).view(b, t, kvHeads, headDim).transpose(1, 2);   // (B, nkv, T, hs)
        var v = MixedPrecision.Linear(v_proj, x).view(b, t, kvHeads, headDim).transpose(1, 2);   // (B, nkv, T, hs)
        q = Attention.Rotate(q, inputs);
        k = Attention.Rotate(k, inputs);
        if (cache is not null)
            (k, v) = cache.Append(layer, k, v, inputs.Start);                     // (B, nkv, S, hs)
        var y = Attention.Attend(q, k, v, inputs);                                 // (B, T, nh * hs)
        return MixedPrecision.Linear(o_proj, y).MoveToOuterDisposeScope();                        // (B, T, C)
    }
}

/// <summary>SwiGLU: down(silu(gate(x)) * up(x)).</summary>
public sealed class LlamaMLP : nn.Module
{
    private readonly Linear gate_proj;   // C -> I
    private readonly Linear up_proj;     // C -> I
    private readonly Linear down_proj;   // I -> C

    public LlamaMLP(LanguageModelConfig c) : base(nameof(LlamaMLP))
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBias);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: c.MlpBias);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: c.MlpBias);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return MixedPrecision.Linear(down_proj, F.silu(MixedPrecision.Linear(gate_proj, x)) * MixedPrecision.Linear(up_proj, x)).MoveToOuterDisposeScope();
    }
}

/// <summary>h = x + attn(norm1(x)); h + mlp(norm2(h)).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMLP mlp;
    private readonly LlamaRMSNorm input_layernorm;
    private readonly LlamaRMSNorm post_attention_layernorm;

    public LlamaDecoderLayer(LanguageModelConfig c, int layer) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c, layer);
        mlp = new LlamaMLP(c);
        input_layernorm = new LlamaRMSNorm(c.HiddenSize, c.NormEps);
        post_attention_layernorm = new LlamaRMSNorm(c.HiddenSize, c.NormEps);
        RegisterComponents();
    }

    /// <summary>x: (B, T, C) -> (B, T, C).</summary>
    public Tensor forward(Tensor x, AttentionInputs inputs, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.forward(input_layernorm.forward(x), inputs, cache);      // (B, T, C)
        return (h + mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>HF's LlamaModel: embed_tokens, the layers, the final norm (registered as <c>model</c>).</summary>
public sealed class LlamaModel : DecoderBackbone
{
    private readonly Embedding embed_tokens;                // V -> C
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRMSNorm norm;
    private readonly Tensor inv_freq;                       // (hs/2), non-persistent

    public LlamaModel(LanguageModelConfig c) : base(nameof(LlamaModel), c)
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, c.Layers).Select(i => new LlamaDecoderLayer(c, i)).ToArray());
        norm = new LlamaRMSNorm(c.HiddenSize, c.NormEps);
        inv_freq = Attention.InverseFrequencies(c.RotaryDims, c.RopeTheta);
        register_buffer(nameof(inv_freq), inv_freq, persistent: false);
        RegisterComponents();
    }

    public override Tensor TokenEmbedding => embed_tokens.get_parameter("weight")!;   // the registered object: see DecoderBackbone
    protected override Tensor InvFreq => inv_freq;
    protected override Tensor Embed(Tensor ids) => embed_tokens.forward(ids);
    protected override Tensor Layer(int layer, Tensor x, AttentionInputs inputs, KvCache? cache) => layers[layer].forward(x, inputs, cache);
    protected override Tensor FinalNorm(Tensor x) => norm.forward(x);
}

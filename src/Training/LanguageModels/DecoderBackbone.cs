using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// The part of a decoder-only transformer both families share the shape of: embed the tokens, run the layers with
/// one set of rotary angles and one mask, apply the final norm. A family supplies its embedding, layer and norm
/// (Llama.cs, GptNeoX.cs); the bookkeeping of positions, masks and the KV cache is here, once.
/// </summary>
public abstract class DecoderBackbone : nn.Module
{
    protected DecoderBackbone(string name, LanguageModelConfig config) : base(name) => Config = config;

    public LanguageModelConfig Config { get; }

    /// <summary>The token embedding (V, C): the output head of a model with tie_word_embeddings. The registered parameter
    /// itself, the same object at every call (TorchSharp's Embedding.weight makes a new handle each time), so that
    /// MixedPrecision finds its cached bf16 copy and an optimizer step drops it.</summary>
    public abstract Tensor TokenEmbedding { get; }

    /// <summary>(rd/2) rotary inverse frequencies: a non-persistent buffer (HF files may or may not carry it).</summary>
    protected abstract Tensor InvFreq { get; }

    /// <summary>ids (B, T) int64 -> (B, T, C).</summary>
    protected abstract Tensor Embed(Tensor ids);

    /// <summary>Layer <paramref name="layer"/>: x (B, T, C) -> (B, T, C).</summary>
    protected abstract Tensor Layer(int layer, Tensor x, AttentionInputs inputs, KvCache? cache);

    /// <summary>The final norm: (B, T, C) -> (B, T, C).</summary>
    protected abstract Tensor FinalNorm(Tensor x);

    /// <summary>
    /// Final hidden states of this call's tokens. ids: (B, T) int64; positions: (B, T) int64 position ids;
    /// keyMask: (B, start + T) 1 on real tokens, 0 on padding (covering cached slots), or null; with a cache the
    /// tokens go to slots cache.Length.. and attend to everything cached. -> (B, T, C).
    /// </summary>
    public Tensor forward(Tensor ids, Tensor positions, Tensor? keyMask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var t = ids.shape[1];
        var start = cache?.Length ?? 0;
        if (cache is not null)
        {
            if (cache.Batch != ids.shape[0] || cache.Layers != Config.Layers)
                throw new ArgumentException($"KV cache made for batch {cache.Batch} and {cache.Layers} layers, got batch {ids.shape[0]} and {Config.Layers} layers");
            if (start + t > cache.MaxLength)
                throw new ArgumentException($"KV cache holds {cache.MaxLength} positions; {start} cached + {t} new exceed it");
            if (is_grad_enabled())
                throw new InvalidOperationException("a KV cache is written in place: use it under no_grad (sampling) only");
            if (MixedPrecision.ComputeType != ScalarType.Float32)
                throw new InvalidOperationException("the KV cache is float32: sampling runs outside MixedPrecision.Use(Bf16)");
        }
        var inputs = Attention.Prepare(InvFreq, positions, keyMask, start, MixedPrecision.ComputeType);
        var x = Embed(ids);                                  // (B, T, C)
        for (var i = 0; i < Config.Layers; i++)
            x = Layer(i, x, inputs, cache);                  // (B, T, C)
        if (cache is not null) cache.Length = start + t;
        return FinalNorm(x).MoveToOuterDisposeScope();       // (B, T, C)
    }
}

using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// What every layer of one forward pass shares, computed once per call by the backbone: the rotary cos/sin at
/// each token's position and the additive attention mask (causal, and padded keys hidden).
/// </summary>
/// <param name="Cos">(B, 1, T, rd) cos(position * inv_freq), the frequencies repeated twice (HF's cat(freqs, freqs)).</param>
/// <param name="Sin">(B, 1, T, rd) likewise sin.</param>
/// <param name="Mask">(B or 1, 1, T, start + T) float: 0 where query i may look at key j, float.MinValue elsewhere.</param>
/// <param name="Start">Positions already in the KV cache (0 without one): this call's tokens are cache slots start..start+T-1.</param>
public sealed record AttentionInputs(Tensor Cos, Tensor Sin, Tensor Mask, long Start);

/// <summary>Rotary position embedding (RoFormer) in Hugging Face's rotate_half layout, and the attention mask: written once for both families.</summary>
public static class Attention
{
    /// <summary>
    /// inv_freq = 1 / theta^(2i / rd) for i in 0..rd/2-1: (rd/2) float32, computed in float32 exactly as HF does
    /// (<c>1.0 / (base ** (arange(0, dim, 2).float() / dim))</c>), so the angles match its to the last bit.
    /// </summary>
    public static Tensor InverseFrequencies(int rotaryDims, double theta)
    {
        using var scope = NewDisposeScope();
        var exponents = arange(0, rotaryDims, 2, dtype: ScalarType.Int64).to_type(ScalarType.Float32) / rotaryDims;   // (rd/2)
        return (1.0 / pow(tensor((float)theta), exponents)).MoveToOuterDisposeScope();                                // (rd/2)
    }

    /// <summary>
    /// The shared inputs of one forward pass. positions: (B, T) int64 position ids of this call's tokens;
    /// keyMask: (B, start + T) 1 on real tokens and 0 on padding, covering the cached positions too, or null (no padding).
    /// computeType: the format q and k have (<see cref="MixedPrecision.ComputeType"/>); cos, sin and the mask are made in
    /// it, as HF casts them to the query's dtype (the fused kernel wants one dtype), the angles computed in float32 first.
    /// </summary>
    public static AttentionInputs Prepare(Tensor invFreq, Tensor positions, Tensor? keyMask, long start, ScalarType computeType = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var t = positions.shape[1];
        var freqs = positions.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq;   // (B, T, rd/2): angle = position * inv_freq
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                              // (B, 1, T, rd)
        // Query i (cache slot start + i) may look at key j <= start + i; padded keys are hidden from every query.
        var causal = ones(t, start + t, dtype: ScalarType.Bool, device: positions.device).tril(start);   // (T, start + T)
        var allowed = causal.unsqueeze(0).unsqueeze(0);                                                  // (1, 1, T, start + T)
        if (keyMask is not null)
            allowed = allowed.logical_and(keyMask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(1));   // (B, 1, T, start + T)
        // float.MinValue rather than -inf, as HF: a pad query that may see no key gets uniform weights, not NaN,
        // so its (unused) hidden state stays finite and cannot poison anything through 0 * NaN.
        // In bf16 its own lowest value: float.MinValue rounds to -inf there.
        var mask = computeType == ScalarType.Float32
            ? zeros(allowed.shape, dtype: ScalarType.Float32, device: positions.device).masked_fill(allowed.logical_not(), float.MinValue)
            : zeros(allowed.shape, dtype: computeType, device: positions.device).masked_fill(allowed.logical_not(), finfo(computeType).min);
        var (cos, sin) = computeType == ScalarType.Float32 ? (emb.cos(), emb.sin()) : (emb.cos().to_type(computeType), emb.sin().to_type(computeType));
        return new AttentionInputs(cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), start);
    }

    /// <summary>
    /// HF's apply_rotary_pos_emb on the first rd dims of each head (the rest pass through, GPT-NeoX's partial
    /// rotary): x: (B, nh, T, hs) -> (B, nh, T, hs). rotate_half pairs dim i with dim i + rd/2.
    /// </summary>
    public static Tensor Rotate(Tensor x, AttentionInputs inputs)
    {
        using var scope = NewDisposeScope();
        var rd = inputs.Cos.shape[^1];
        var hs = x.shape[^1];
        var rot = rd == hs ? x : x.narrow(-1, 0, rd);                            // (B, nh, T, rd)
        var half = rd / 2;
        var rotated = cat([-rot.narrow(-1, half, half), rot.narrow(-1, 0, half)], -1);   // rotate_half: (-x2, x1)
        var embedded = rot * inputs.Cos + rotated * inputs.Sin;                 // (B, nh, T, rd)
        var result = rd == hs ? embedded : cat([embedded, x.narrow(-1, rd, hs - rd)], -1);   // (B, nh, T, hs)
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// softmax(q k^T / sqrt(hs) + mask) v with grouped-query attention: q (B, nh, T, hs); k, v (B, nkv, S, hs),
    /// query head h reading kv head h / (nh / nkv) (HF's repeat_kv) -> (B, T, nh * hs), the heads side by side.
    /// </summary>
    /// <remarks>
    /// Instead of copying each kv head nh / nkv times (repeat_kv), the g query heads that share a kv head are stacked
    /// along the query axis, (B, nkv, g * T, hs): the same scores without copying the cache at every step.
    /// </remarks>
    /// <summary>Queries per call from which the fused kernel is used (a prompt or a training sequence, not a decoding step).</summary>
    public const int FusedFromQueries = 16;

    public static Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionInputs inputs)
    {
        using var scope = NewDisposeScope();
        var (b, nh, t, hs) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
        var nkv = k.shape[1];
        var g = nh / nkv;
        var mask = inputs.Mask;                                                        // (B or 1, 1, T, S)
        if (g > 1)
        {
            q = q.reshape(b, nkv, g * t, hs);                                          // (B, nkv, g * T, hs): head kv * g + i, query i
            mask = mask.repeat(1, 1, g, 1);                                            // (B or 1, 1, g * T, S)
        }
        Tensor y;                                                                      // (B, nkv, g * T, hs)
        if (t >= FusedFromQueries)
        {
            // A whole sequence (training, scoring, a prompt): libtorch's fused kernel never holds the (g * T, S) score
            // matrix per head, which at a few hundred tokens is hundreds of MB a layer, allocated and freed each pass.
            y = F.scaled_dot_product_attention(q, k, v, mask.expand(b, nkv, g * t, k.shape[2]));
        }
        else
        {
            // Decoding (a few queries against the cache): the plain matmuls measured 1.7x faster here on CPU, and they
            // are HF's eager attention line for line.
            var scores = matmul(q, k.transpose(-2, -1)) * (1.0 / Math.Sqrt(hs)) + mask;   // (B, nkv, g * T, S)
            // A bf16 softmax in float32, as the fused kernel accumulates it (MixedPrecision).
            var weights = scores.dtype == ScalarType.Float32 ? F.softmax(scores, -1) : F.softmax(scores.to_type(ScalarType.Float32), -1).to_type(v.dtype);
            y = matmul(weights, v);
        }
        return y.reshape(b, nh, t, hs).transpose(1, 2).reshape(b, t, nh * hs).MoveToOuterDisposeScope();   // (B, T, nh * hs)
    }
}

/// <summary>
/// Keys and values of the positions a batch has seen so far, one pair per layer, preallocated to the longest
/// sequence and written in place (B, nkv, MaxLength, hs). Owns its tensors outside any dispose scope: dispose it.
/// Use under no_grad only.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;

    public KvCache(long batch, int layers, int kvHeads, int maxLength, int headDim, Device? device = null)
    {
        Batch = batch;
        MaxLength = maxLength;
        keys = Enumerable.Range(0, layers).Select(_ => zeros([batch, kvHeads, maxLength, headDim], device: device).DetachFromDisposeScope()).ToArray();
        values = Enumerable.Range(0, layers).Select(_ => zeros([batch, kvHeads, maxLength, headDim], device: device).DetachFromDisposeScope()).ToArray();
    }

    public long Batch { get; }
    public int MaxLength { get; }
    public int Layers => keys.Length;

    /// <summary>Slots 0..Length-1 are filled; the backbone advances it after each forward pass.</summary>
    public long Length { get; internal set; }

    /// <summary>Writes layer's k, v (B, nkv, T, hs) at slots start..start+T-1; returns slots 0..start+T-1 (views).</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v, long start)
    {
        var t = k.shape[2];
        keys[layer].narrow(2, start, t).copy_(k);
        values[layer].narrow(2, start, t).copy_(v);
        return (keys[layer].narrow(2, 0, start + t), values[layer].narrow(2, 0, start + t));   // (B, nkv, start + T, hs)
    }

    public void Dispose()
    {
        foreach (var tensor in keys.Concat(values)) tensor.Dispose();
    }
}

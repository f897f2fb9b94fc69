using System.Runtime.CompilerServices;
using PrefTune.Messages;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// bf16 mixed precision by hand (TorchSharp has no autocast), the one place that decides what computes in which format.
/// Inside <see cref="Use"/>(Bf16) a forward pass on this thread runs every matmul of a Linear layer and of the LM head in
/// bfloat16: the weight and the input are cast, the output is bf16. Everything else stays float32: the weights themselves
/// and so the optimizer's state (the master copy), the residual stream (a float32 embedding plus bf16 layer outputs
/// promotes to float32, as under PyTorch's autocast), so RMSNorm / LayerNorm see float32; the attention softmax (libtorch's
/// fused kernel accumulates it in float32 for bf16 inputs; the short-query path casts up itself); the log-softmax over the
/// vocabulary (<see cref="SequenceLogProbs.FromLogits"/> casts the logits up first) and every loss. Gradients flow back
/// through the casts to the float32 weights. Outside a <see cref="Use"/> scope nothing changes: the float32 path is the
/// same calls as before, bit for bit.
/// </summary>
/// <remarks>
/// The bf16 copy of a weight is cached, so that the M / m micro-batches of an optimizer step (and the pass without
/// gradient that accumulation makes first, and a reference model that never changes) cast it once, not once per pass.
/// The copy is made with autograd on whenever the weight wants a gradient, so the same copy serves passes with and without
/// gradient, and every backward through it reaches the float32 weight (the cast saves no tensors, so several backward
/// passes may run through one copy). A weight changes in place only in an optimizer step or when weights are loaded, and
/// each of those calls <see cref="WeightsChanged"/> (PolicyOptimizer, the learner's plain Adam, LanguageModelPolicy.LoadWeights);
/// anything else that writes a weight in place must call it too, or later bf16 passes would read the old values.
/// The copies are found by the weight's object, so a module must hand out its registered parameter, the same object at
/// every call (Linear's weight is; <see cref="DecoderBackbone.TokenEmbedding"/> is made so). They cost half the float32
/// weights' memory per model.
/// </remarks>
public static class MixedPrecision
{
    private enum Mode { Fp32, Bf16, Bf16Uncached }

    /// <summary>How the forward passes on this thread compute; forward passes run synchronously on the caller's thread.</summary>
    [ThreadStatic] private static Mode mode;

    /// <summary>bf16 copies by float32 weight: weak keys, so a model that is dropped takes its copies with it.</summary>
    private static readonly ConditionalWeakTable<Tensor, Tensor> Casts = new();

    /// <summary>
    /// Forward passes on this thread compute in <paramref name="precision"/> until the result is disposed (the previous
    /// setting is then restored, so scopes nest). <paramref name="cacheWeights"/> false casts every weight at every use
    /// (what the benchmark compares the cache against).
    /// </summary>
    public static IDisposable Use(Precision precision, bool cacheWeights = true)
    {
        var previous = mode;
        mode = precision == Precision.Bf16 ? cacheWeights ? Mode.Bf16 : Mode.Bf16Uncached : Mode.Fp32;
        return new Restore(previous);
    }

    /// <summary>The format matmul inputs and outputs have in this thread's forward passes.</summary>
    public static ScalarType ComputeType => mode == Mode.Fp32 ? ScalarType.Float32 : ScalarType.BFloat16;

    /// <summary><paramref name="layer"/>(x) in the compute format: (..., in) -> (..., out).</summary>
    public static Tensor Linear(Linear layer, Tensor x) =>
        mode == Mode.Fp32 ? layer.forward(x) : Linear(x, layer.weight!, layer.bias);

    /// <summary>x W^T + b in the compute format: x (..., in), weight (out, in), bias (out) or null -> (..., out).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (mode == Mode.Fp32) return F.linear(x, weight, bias);
        using var scope = NewDisposeScope();
        var input = x.dtype == ScalarType.BFloat16 ? x : x.to_type(ScalarType.BFloat16);
        return F.linear(input, Weight(weight), bias is null ? null : Weight(bias)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Drops the bf16 copies of <paramref name="parameters"/>: call it after anything writes them in place (an optimizer
    /// step, loading weights), so the next bf16 pass casts the new values.
    /// </summary>
    public static void WeightsChanged(IEnumerable<Tensor> parameters)
    {
        foreach (var parameter in parameters)
            if (Casts.TryGetValue(parameter, out var copy))
            {
                Casts.Remove(parameter);
                copy.Dispose();
            }
    }

    /// <summary>How many of <paramref name="parameters"/> have a cached bf16 copy (what the tests check the cache by).</summary>
    public static int CachedCopies(IEnumerable<Tensor> parameters) => parameters.Count(p => Casts.TryGetValue(p, out _));

    /// <summary>The bf16 copy of a float32 weight: cached (see the remarks), or a fresh cast in the caller's scope.</summary>
    private static Tensor Weight(Tensor weight)
    {
        if (mode == Mode.Bf16Uncached) return weight.to_type(ScalarType.BFloat16);
        if (Casts.TryGetValue(weight, out var cached)) return cached;
        Tensor copy;
        // With autograd on even inside no_grad, so one copy serves the passes with gradient too.
        using (enable_grad(weight.requires_grad))
            copy = weight.to_type(ScalarType.BFloat16).DetachFromDisposeScope();
        Casts.AddOrUpdate(weight, copy);
        return copy;
    }

    private sealed class Restore(Mode previous) : IDisposable
    {
        public void Dispose() => mode = previous;
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// A Llama or GPT-NeoX backbone with its head, registered under Hugging Face's names so that the state dict's keys
/// are the checkpoint's: the backbone as <c>model</c> (Llama) or <c>gpt_neox</c>, the head as <c>lm_head</c> /
/// <c>embed_out</c> (causal LM; absent when tied to the token embedding) or <c>score</c> (sequence
/// classification: a reward model, bias-free C -> num_labels, read at the last real token).
/// </summary>
public sealed class LanguageModel : nn.Module
{
    private readonly DecoderBackbone backbone;
    private readonly Linear? head;

    /// <summary>Builds the model with fresh random weights (libtorch's global generator); loaders overwrite them.</summary>
    public LanguageModel(LanguageModelConfig config) : base(config.Architecture)
    {
        Config = config;
        backbone = config.Family switch
        {
            ModelFamily.Llama => new LlamaModel(config),
            _ => new GPTNeoXModel(config),
        };
        register_module(config.Family == ModelFamily.Llama ? "model" : "gpt_neox", backbone);
        if (config.Head == ModelHead.SequenceClassification)
            register_module("score", head = nn.Linear(config.HiddenSize, config.NumLabels, hasBias: false));
        else if (!config.TieWordEmbeddings)
            register_module(config.Family == ModelFamily.Llama ? "lm_head" : "embed_out", head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false));
    }

    /// <summary>Nothing to add: the submodules are registered above under Hugging Face's names. TorchSharp's default
    /// registers every module field again under its C# name ("backbone", "head") when this model becomes another's
    /// submodule (a policy's "lm"), which doubled the state dict: checkpoints twice the size, with keys no Hugging Face
    /// file has (the parameters themselves were shared, so training was unaffected).</summary>
    protected override void RegisterComponents() { }

    public LanguageModelConfig Config { get; }

    /// <summary>The device the weights live on: every input goes there.</summary>
    /// <remarks>In a scope of its own: reading a tensor's device may make a handle (TorchSharp's module getters often do),
    /// which would outlive a caller without one.</remarks>
    public Device Device
    {
        get
        {
            using var scope = NewDisposeScope();
            return backbone.TokenEmbedding.device;
        }
    }

    /// <summary>
    /// Head outputs at every position of this call's tokens: ids (B, T) int64 -> (B, T, V) logits, or (B, T, num_labels)
    /// scores for a sequence classifier. attentionMask: (B, cached + T) 1 on real tokens, 0 on (left) padding, or
    /// null. positionIds: (B, T); by default HF's <c>cumsum(mask) - 1</c> with pads at 1 (this call's columns of it), or
    /// cached..cached+T-1 without a mask.
    /// </summary>
    public Tensor forward(Tensor ids, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return ForwardWithHidden(ids, attentionMask, positionIds, cache).Output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="forward"/> that also returns the backbone's last hidden states (after the final norm, what the head
    /// reads): (B, T, V) head outputs and (B, T, C) hidden states from one pass, so a value head on the same states
    /// (<see cref="Policies.LanguageModelPolicy"/>) costs no second forward. Same arguments as <see cref="forward"/>.
    /// </summary>
    public (Tensor Output, Tensor Hidden) ForwardWithHidden(Tensor ids, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var t = ids.shape[1];
        var start = cache?.Length ?? 0;
        positionIds ??= attentionMask is not null
            ? PositionsFromMask(attentionMask).narrow(1, attentionMask.shape[1] - t, t)   // the mask covers the cached slots too
            : arange(start, start + t, dtype: ScalarType.Int64, device: ids.device).unsqueeze(0).expand(ids.shape[0], -1);
        var hidden = backbone.forward(ids, positionIds, attentionMask, cache);   // (B, T, C)
        var output = head is null ? MixedPrecision.Linear(hidden, backbone.TokenEmbedding, null) : MixedPrecision.Linear(head, hidden);   // (B, T, V), bf16 under MixedPrecision
        return (output.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// A sequence classifier's scores at each row's last real token (the reward of a reward model): ids (B, T),
    /// attentionMask (B, T) or null (every token real) -> (B, num_labels). Left or right padding both work.
    /// </summary>
    public Tensor Scores(Tensor ids, Tensor? attentionMask = null, Tensor? positionIds = null)
    {
        if (Config.Head != ModelHead.SequenceClassification)
            throw new InvalidOperationException($"{Config.Architecture} has no score head");
        using var scope = NewDisposeScope();
        var perPosition = forward(ids, attentionMask, positionIds);                              // (B, T, L)
        var t = ids.shape[1];
        // The last index whose mask is 1: argmax over mask * (1..T) picks the largest real position.
        var last = attentionMask is null
            ? full(ids.shape[0], t - 1, dtype: ScalarType.Int64, device: ids.device)
            : (attentionMask.to_type(ScalarType.Int64) * arange(1, t + 1, dtype: ScalarType.Int64, device: ids.device)).argmax(1);   // (B)
        var index = last.view(-1, 1, 1).expand(-1, 1, perPosition.shape[2]);                    // (B, 1, L)
        return perPosition.gather(1, index).squeeze(1).MoveToOuterDisposeScope();               // (B, L)
    }

    /// <summary>A cache for <paramref name="batch"/> rows of up to <paramref name="maxLength"/> positions, on the model's device.</summary>
    public KvCache NewCache(long batch, int maxLength) =>
        new(batch, Config.Layers, Config.KvHeads, maxLength, Config.HeadDim, Device);

    /// <summary>HF's positions for a left-padded batch: real tokens 0..len-1, pad slots 1. mask (B, T) -> (B, T) int64.</summary>
    public static Tensor PositionsFromMask(Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var mask = attentionMask.to_type(ScalarType.Int64);
        return (mask.cumsum(1) - 1).masked_fill(mask.eq(0), 1).MoveToOuterDisposeScope();
    }
}

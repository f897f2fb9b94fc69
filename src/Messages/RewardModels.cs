namespace PrefTune.Messages;

/// <summary>
/// A proxy reward model was trained from preference pairs (`preftune train-rm`) and written as a Hugging Face directory
/// that a run's reward_model.path can name. On a stream of its own, keyed by <see cref="RewardModelId"/>: it belongs to
/// no run, and the runs that use it name its directory and weights hash.
/// </summary>
public sealed record RewardModelTrained
{
    public required Guid RewardModelId { get; init; }
    /// <summary>The dataset file as given (made absolute) and the SHA-256 of its bytes: what the model learned from.</summary>
    public required string Dataset { get; init; }
    public required string DatasetSha256 { get; init; }
    /// <summary>The causal LM (or classifier) it was initialised from, as given (made absolute).</summary>
    public required string BaseModel { get; init; }
    /// <summary>The tokenizer file the texts were encoded with.</summary>
    public required string Tokenizer { get; init; }
    public required int Steps { get; init; }
    /// <summary>Pairs per optimizer step.</summary>
    public required int Batch { get; init; }
    public required double LearningRate { get; init; }
    public required int Seed { get; init; }
    /// <summary>h = MarginScale x score_diff; 0 when trained without a margin.</summary>
    public double MarginScale { get; init; }
    /// <summary>c of the centering term; 0 when off.</summary>
    public double CenterRewards { get; init; }
    public required int TrainPairs { get; init; }
    public required int EvalPairs { get; init; }
    /// <summary>Share of held-out pairs with r_w &gt; r_l after training; null when nothing was held out.</summary>
    public double? EvalAccuracy { get; init; }
    /// <summary>Mean r_w - r_l over the held-out pairs after training; null when nothing was held out.</summary>
    public double? EvalMargin { get; init; }
    /// <summary>The directory written (absolute).</summary>
    public required string Output { get; init; }
    /// <summary>SHA-256 of the written model.safetensors.</summary>
    public required string WeightsSha256 { get; init; }
    public required DateTimeOffset TrainedAt { get; init; }
}

namespace PrefTune.Messages;

/// <summary>
/// A causal language model was fine-tuned on prompt/completion data (`preftune sft`) and written as a Hugging Face
/// directory that a run's task.model.path can name: a reference of the user's own making (the paper's reference is an
/// SFT model). On a stream of its own, keyed by <see cref="PolicyId"/>: it belongs to no run, and the runs that start
/// from it name its directory and weights hash.
/// </summary>
public sealed record PolicyFineTuned
{
    public required Guid PolicyId { get; init; }
    /// <summary>The dataset file as given (made absolute) and the SHA-256 of its bytes: what the model learned from.</summary>
    public required string Dataset { get; init; }
    public required string DatasetSha256 { get; init; }
    /// <summary>The causal LM it started from, as given (made absolute).</summary>
    public required string BaseModel { get; init; }
    /// <summary>The tokenizer file the texts were encoded with.</summary>
    public required string Tokenizer { get; init; }
    public required int Steps { get; init; }
    /// <summary>Rows (prompt + completion sequences) per optimizer step.</summary>
    public required int Batch { get; init; }
    public required double LearningRate { get; init; }
    public required int Seed { get; init; }
    /// <summary>The token appended to every completion so the model learns to stop; null when the model has none.</summary>
    public int? StopId { get; init; }
    public required int TrainRows { get; init; }
    public required int EvalRows { get; init; }
    /// <summary>Mean negative log-likelihood per held-out completion token after training; null when nothing was held out.</summary>
    public double? EvalLoss { get; init; }
    /// <summary>Share of held-out completion tokens that are the model's argmax after training; null when nothing was held out.</summary>
    public double? EvalTokenAccuracy { get; init; }
    /// <summary>The directory written (absolute).</summary>
    public required string Output { get; init; }
    /// <summary>SHA-256 of the written model.safetensors.</summary>
    public required string WeightsSha256 { get; init; }
    public required DateTimeOffset FineTunedAt { get; init; }
}

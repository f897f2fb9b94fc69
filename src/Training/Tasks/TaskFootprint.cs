namespace PrefTune.Training.Tasks;

/// <summary>
/// What a task's policy and samples cost in memory, computed from the spec alone (nothing is built or allocated),
/// so that a run too large for the machine is refused before it starts. Sizes are in numbers (float32, 4 bytes)
/// and are estimates: the orders of magnitude matter, not the last percent.
/// </summary>
public sealed record TaskFootprint
{
    /// <summary>Numbers in one policy network: its parameters and buffers (what a checkpoint holds).</summary>
    public required double Weights { get; init; }
    /// <summary>The task block's keys that set <see cref="Weights"/>, e.g. hidden, actions.</summary>
    public required IReadOnlyList<SizeField> WeightFields { get; init; }
    /// <summary>Tokens in one rollout, prompt and response.</summary>
    public required double TokensPerRollout { get; init; }
    /// <summary>Numbers one sample holds in a gradient step: the activations kept for backward, their gradients, the logits.</summary>
    public required double TrainingNumbersPerSample { get; init; }
    /// <summary>Numbers one sample holds while it is sampled or scored without gradient (logits, a KV cache).</summary>
    public required double InferenceNumbersPerSample { get; init; }
    /// <summary>The task block's keys that set the per-sample sizes (vocabulary, lengths, widths).</summary>
    public required IReadOnlyList<SizeField> SampleFields { get; init; }
}

/// <summary>A key of a spec block and its value, as a size estimate names it: <c>hidden = 64</c>.</summary>
public sealed record SizeField(string Key, double Value)
{
    public override string ToString() => $"{Key} = {Value.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}";
}

namespace PrefTune.Messages;

/// <summary>What a batch of rollouts is for.</summary>
public enum RolloutPurpose
{
    /// <summary>On-policy training data for one iteration of Algorithm 1.</summary>
    Training,
    /// <summary>The offline preference dataset D_pref, sampled once from the reference policy.</summary>
    Dataset,
    /// <summary>Fresh samples for measuring the gold reward; summarised, not trained on.</summary>
    Evaluation,
}

/// <summary>How a generated response ended.</summary>
public enum FinishReason
{
    /// <summary>It emitted a stop token (the last of its ResponseTokens).</summary>
    Stop,
    /// <summary>It reached max_new_tokens without one: truncated.</summary>
    Length,
}

/// <summary>A prompt x: an id and its tokens (for the bandit, one token naming its context vector).</summary>
public sealed record Prompt
{
    public required string PromptId { get; init; }
    public required int[] Tokens { get; init; }
}

/// <summary>Ask the Sampler for C responses to each prompt from the policy at a given checkpoint.</summary>
public sealed record SampleRollouts
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required RolloutPurpose Purpose { get; init; }
    public required int Iteration { get; init; }
    public required TaskSpec Task { get; init; }
    public required CheckpointRef Policy { get; init; }
    public required IReadOnlyList<Prompt> Prompts { get; init; }
    /// <summary>C.</summary>
    public required int ResponsesPerPrompt { get; init; }
    public double Temperature { get; init; } = 1.0;
    /// <summary>Seeds this batch's sampling; the same seed and checkpoint give the same responses.</summary>
    public required long Seed { get; init; }
    public int TorchThreads { get; init; } = 1;
    /// <summary>When set, each rollout also carries log pi_ref(y|x) under this checkpoint (evaluation: KL to the reference).</summary>
    public CheckpointRef? Reference { get; init; }
}

/// <summary>One response y to one prompt x, with what the sampling policy thought of it.</summary>
public sealed record Rollout
{
    public required Guid SampleId { get; init; }
    public required string PromptId { get; init; }
    /// <summary>Index of the prompt within its batch: responses with equal Group answer the same prompt.</summary>
    public required int Group { get; init; }
    public required int[] PromptTokens { get; init; }
    public required int[] ResponseTokens { get; init; }
    /// <summary>log pi(y_t | x, y_&lt;t) under the sampling policy, one per response token.</summary>
    public required float[] TokenLogProbs { get; init; }
    /// <summary>The policy version that generated the response (staleness is measured against it).</summary>
    public required int PolicyVersion { get; init; }
    /// <summary>log pi_ref(y|x), sequence level, when the request asked for it.</summary>
    public double? ReferenceLogProb { get; init; }
    /// <summary>How a language model's response ended; null for fixed-length responses (the bandit). A stopped response's
    /// last token is the stop token, scored like the others: pi(y|x) includes the decision to stop.</summary>
    public FinishReason? Finish { get; init; }
}

public static class RolloutLengths
{
    /// <summary>The response's length in tokens, the stop token not counted (what a length reward measures).</summary>
    public static int ContentLength(this Rollout rollout) =>
        rollout.ResponseTokens.Length - (rollout.Finish == FinishReason.Stop ? 1 : 0);
}

/// <summary>The Sampler's answer to <see cref="SampleRollouts"/>.</summary>
public sealed record RolloutsGenerated
{
    public required Guid RunId { get; init; }
    public required Guid BatchId { get; init; }
    public required RolloutPurpose Purpose { get; init; }
    public required int Iteration { get; init; }
    public required int PolicyVersion { get; init; }
    [System.Text.Json.Serialization.JsonConverter(typeof(PackedRolloutsConverter))]
    public required IReadOnlyList<Rollout> Rollouts { get; init; }
}

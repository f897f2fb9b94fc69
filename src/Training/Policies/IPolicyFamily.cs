using PrefTune.Messages;
using PrefTune.Training.Tasks;
using static TorchSharp.torch;

namespace PrefTune.Training.Policies;

/// <summary>
/// A policy family: the networks that answer a task's prompts, how they are built and fitted to the reference data,
/// how they sample responses and score them. A task (<see cref="IPromptTask"/>) says what is asked and what is right;
/// the family says who answers. Kinds are registered in <see cref="PolicyRegistry"/>.
/// </summary>
public interface IPolicyFamily
{
    /// <summary>A fresh policy network, initialised from the seed (torch.manual_seed inside).</summary>
    PolicyModel CreatePolicy(int seed);

    /// <summary>Fits a fresh policy to the reference data distribution (the bandit: pi_data); returns the final fit loss.</summary>
    double FitReference(PolicyModel policy, int seed);

    /// <summary>Samples <paramref name="responsesPerPrompt"/> responses per prompt, with per-token log-probs.
    /// Deterministic in <paramref name="seed"/> and the policy's weights.</summary>
    IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId);

    /// <summary>Sequence log-probs log pi(y|x) = sum of token log-probs, one per rollout: shape [N]; carries grad if the policy does.</summary>
    Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts);

    /// <summary>
    /// Per-token scores for token-level methods (PPO with a value head): log pi(y_t|x, y_&lt;t) and the policy's value
    /// estimate V(x, y_&lt;t), each [N, L] with L the longest response, zero past a response's end; both carry grad if
    /// the policy does. Null when the family has no per-token view (one action per response, no value head).
    /// </summary>
    TokenScores? ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => null;
}

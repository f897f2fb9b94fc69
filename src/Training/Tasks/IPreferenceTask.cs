using PrefTune.Messages;
using TorchSharp;
using PrefTune.Training.Policies;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks;

/// <summary>
/// A problem PrefTune fine-tunes on: its prompts, a policy family that answers them, and a gold reward.
/// Every service talks to a task through this interface, so the synthetic length tasks and real text
/// tasks plug in beside the bandit without touching the services.
/// </summary>
public interface IPreferenceTask
{
    TaskSpec Spec { get; }

    /// <summary>The task's prompt pool for a run seed (the bandit: Prompts context vectors).</summary>
    IReadOnlyList<Prompt> PromptPool(int seed);

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
    /// the policy does. Null when the task's policy has no per-token view (one action per response, no value head).
    /// </summary>
    TokenScores? ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => null;

    /// <summary>The ground-truth reward of one rollout.</summary>
    double GoldReward(Rollout rollout);
}

/// <summary>Per-token log-probs and value estimates of N responses under one policy: [N, L] each.</summary>
public sealed record TokenScores(Tensor LogProbs, Tensor Values);

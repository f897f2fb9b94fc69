using PrefTune.Messages;
using PrefTune.Training.Policies;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks;

/// <summary>
/// A task a causal language model answers (<see cref="LanguageModelFamily"/>, built from task.model): the policy work is
/// the family's, written once here; a task kind adds its prompts and its gold reward.
/// </summary>
public abstract class LanguageModelTask : IPreferenceTask
{
    private readonly LanguageModelFamily _family;

    protected LanguageModelTask(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Spec = spec;
        _family = (LanguageModelFamily)LanguageModelFamily.Descriptor.Create(spec);
    }

    public TaskSpec Spec { get; }

    public abstract IReadOnlyList<Prompt> PromptPool(int seed);
    public abstract double GoldReward(Rollout rollout);

    public PolicyModel CreatePolicy(int seed) => _family.CreatePolicy(seed);
    public double FitReference(PolicyModel policy, int seed) => _family.FitReference(policy, seed);
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt, double temperature,
        long seed, int policyVersion, Guid batchId) => _family.Generate(policy, prompts, responsesPerPrompt, temperature, seed, policyVersion, batchId);
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => _family.SequenceLogProbs(policy, rollouts);
    /// <summary>Token log-probs and the value head's values, for token-level methods (PPO): the family's.</summary>
    public TokenScores? ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => _family.ScoreTokens(policy, rollouts);
}

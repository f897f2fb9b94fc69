using PrefTune.Messages;
using PrefTune.Training.Policies;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks;

/// <summary>What a problem asks and what is right: its prompts and its gold reward. Kinds are registered in
/// <see cref="TaskRegistry"/>; who answers the prompts is a policy family (<see cref="IPolicyFamily"/>).</summary>
public interface IPromptTask
{
    TaskSpec Spec { get; }

    /// <summary>The task's prompt pool for a run seed (the bandit: Prompts context vectors).</summary>
    IReadOnlyList<Prompt> PromptPool(int seed);

    /// <summary>The ground-truth reward of one rollout.</summary>
    /// <exception cref="InvalidOperationException">The task's gold reward is a model (<see cref="GoldRewardModel"/>): the Scorer reads it.</exception>
    double GoldReward(Rollout rollout);

    /// <summary>The prompts every evaluation samples: the pool itself, unless the task holds some out of training.</summary>
    IReadOnlyList<Prompt> EvaluationPrompts(int seed) => PromptPool(seed);

    /// <summary>A gold reward that is a learned model rather than arithmetic on the rollout (the Scorer loads and reads it);
    /// null where <see cref="GoldReward"/> is the rule.</summary>
    RewardModelSpec? GoldRewardModel => null;

    /// <summary>Whether a prompt (as the task's dataset renders it) is held out of training for evaluation: offline
    /// D_pref leaves out its rows. None is, unless the task holds some out.</summary>
    bool IsHeldOut(string promptText) => false;

    /// <summary>Whether each evaluation also samples the reference on the same prompts and reports the policy's win rate
    /// against it (PAPER.md, Problem 3's measure).</summary>
    bool ComparesWithReference => false;
}

/// <summary>
/// A problem PrefTune fine-tunes on with the policy family that answers it: what every service talks to, so the
/// synthetic length tasks and real text tasks plug in beside the bandit without touching the services.
/// </summary>
public interface IPreferenceTask : IPromptTask, IPolicyFamily;

/// <summary>Per-token log-probs and value estimates of N responses under one policy: [N, L] each.</summary>
public sealed record TokenScores(Tensor LogProbs, Tensor Values);

using PrefTune.Messages;
using PrefTune.Training.Methods;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks.Bandit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

/// <summary>Bandit tasks and minibatches for the tests that need a real policy.</summary>
internal static class Bandits
{
    public static BanditTask Task(double center = 70, int actions = 100, int contextSize = 100, int hidden = 64, int prompts = 8) =>
        new(new TaskSpec
        {
            Kind = "bandit",
            Bandit = new BanditSpec { RewardCenter = center, Actions = actions, ContextSize = contextSize, Hidden = hidden, Prompts = prompts },
        });

    /// <summary>A small bandit: 10 actions, 4-dim contexts, hidden 8, 2 prompts.</summary>
    public static BanditTask Small() => Task(center: 7, actions: 10, contextSize: 4, hidden: 8, prompts: 2);

    /// <summary>
    /// A [G, C] minibatch from the policy's own samples, with distinct made-up rewards (so every method
    /// finds pairs); LogProbs carries the policy's gradient, RefLogProbs comes from <paramref name="reference"/>.
    /// </summary>
    public static GroupBatch Minibatch(BanditTask task, PolicyModel policy, PolicyModel reference, int c = 4, long seed = 1)
    {
        var prompts = task.PromptPool(0);
        var rollouts = task.Generate(policy, prompts, c, 1.0, seed, 0, Guid.Empty);
        var g = prompts.Count;
        Tensor refLogProbs;
        using (no_grad())
            refLogProbs = task.SequenceLogProbs(reference, rollouts).reshape(g, c);
        return new GroupBatch
        {
            LogProbs = task.SequenceLogProbs(policy, rollouts).reshape(g, c),                            // [G, C]
            RefLogProbs = refLogProbs,                                                                  // [G, C]
            SamplingLogProbs = tensor(rollouts.Select(r => r.TokenLogProbs[0]).ToArray()).reshape(g, c),
            Rewards = arange(g * c, dtype: ScalarType.Float32).reshape(g, c) / (g * c),                  // distinct, in [0, 1)
            Lengths = ones(g, c),
        };
    }
}

using PrefTune.Messages;
using PrefTune.Training.Methods;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks;
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

    /// <summary>A small gpt bandit: 10 actions, 2 prompts, 3-token responses, one block of 2 heads, width 8, no reference fit.</summary>
    public static BanditTask SmallGpt() => new(new TaskSpec
    {
        Kind = "bandit",
        Bandit = new BanditSpec
        {
            Policy = "gpt", RewardCenter = 7, Actions = 10, Prompts = 2, ResponseLength = 3, Layers = 1, Heads = 2, Width = 8, ReferenceSteps = 0,
        },
    });

    /// <summary>The small bandit a method can train on: the gpt one for token-level methods, the categorical one otherwise.</summary>
    public static BanditTask SmallFor(string method) => MethodRegistry.Get(method).TokenLevel ? SmallGpt() : Small();

    /// <summary>
    /// A [G, C] minibatch from the policy's own samples, with distinct made-up rewards (so every method
    /// finds pairs); LogProbs carries the policy's gradient, RefLogProbs comes from <paramref name="reference"/>.
    /// When the task scores tokens (the gpt bandit) it also has the per-token view, old values = the current values.
    /// </summary>
    public static GroupBatch Minibatch(BanditTask task, PolicyModel policy, PolicyModel reference, int c = 4, long seed = 1)
    {
        var prompts = task.PromptPool(0);
        var rollouts = task.Generate(policy, prompts, c, 1.0, seed, 0, Guid.Empty);
        var g = prompts.Count;
        Tensor refLogProbs;
        using (no_grad())
            refLogProbs = task.SequenceLogProbs(reference, rollouts).reshape(g, c);
        var batch = new GroupBatch
        {
            LogProbs = task.SequenceLogProbs(policy, rollouts).reshape(g, c),                            // [G, C]
            RefLogProbs = refLogProbs,                                                                  // [G, C]
            SamplingLogProbs = tensor(rollouts.Select(r => r.TokenLogProbs.Sum()).ToArray()).reshape(g, c),
            Rewards = arange(g * c, dtype: ScalarType.Float32).reshape(g, c) / (g * c),                  // distinct, in [0, 1)
            Lengths = tensor(rollouts.Select(r => (float)r.ResponseTokens.Length).ToArray()).reshape(g, c),
        };
        var scores = task.ScoreTokens(policy, rollouts);                                                // [N, R] each, or null
        if (scores is null) return batch;
        TokenScores refScores;
        using (no_grad())
            refScores = task.ScoreTokens(reference, rollouts)!;
        var r = scores.LogProbs.shape[1];
        Tensor Tokens(Tensor t) => t.reshape(g, c, r);                                                  // [N, R] -> [G, C, R]
        return batch with
        {
            Tokens = new TokenBatch
            {
                LogProbs = Tokens(scores.LogProbs),
                RefLogProbs = Tokens(refScores.LogProbs),
                SamplingLogProbs = Tokens(tensor(rollouts.SelectMany(x => x.TokenLogProbs).ToArray())),
                Values = Tokens(scores.Values),
                OldValues = Tokens(scores.Values.detach()),
                Mask = ones(g, c, r),
            },
        };
    }
}

using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Training.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks.Bandit;

/// <summary>
/// The bandit's policy "categorical" (PAPER.md, Problem 1, policy (a)): an MLP from prompt k's context vector to the
/// logits of the A actions; a response is one action token. Prompt k's context vector is drawn from N(0, I) by a
/// generator seeded from (run seed, k) when the policy is built, and stored as a buffer in the policy (so every
/// checkpoint carries it).
/// </summary>
internal sealed class CategoricalBandit(BanditSpec bandit, double[] dataDistribution, double[] goldRewards) : IBanditFamily
{
    public static PolicyKind Descriptor { get; } = BanditTask.PolicyKind("categorical",
        "an MLP from a context vector to the action logits, one action per response",
        (b, data, gold) => new CategoricalBandit(b, data, gold), Footprint);

    /// <summary>
    /// The memory of this policy and its samples from the spec alone: the MLP keeps context + 2 hidden + A numbers per
    /// sample, three times over in a gradient step (activations, gradients, temporaries).
    /// </summary>
    public static TaskFootprint Footprint(BanditSpec b)
    {
        double perSample = (double)b.ContextSize + 2.0 * b.Hidden + b.Actions;
        return new TaskFootprint
        {
            Weights = CategoricalPolicy.ParameterCount(b.Prompts, b.ContextSize, b.Hidden, b.Actions),
            WeightFields = [new("prompts", b.Prompts), new("context_size", b.ContextSize), new("hidden", b.Hidden), new("actions", b.Actions)],
            TokensPerRollout = 2,
            TrainingNumbersPerSample = 3 * perSample,
            InferenceNumbersPerSample = perSample + 2.0 * b.Actions,
            SampleFields = [new("context_size", b.ContextSize), new("hidden", b.Hidden), new("actions", b.Actions)],
        };
    }

    /// <summary>r(a) of the rollout's action.</summary>
    public double GoldReward(Rollout rollout) => goldRewards[ActionOf(rollout)];

    /// <summary>
    /// torch.manual_seed(seed), then the MLP's initialisation, under <see cref="TorchRuntime.GlobalSeedLock"/>
    /// so concurrent builders cannot interleave draws; the contexts come from their own (seed, k) generators.
    /// </summary>
    public PolicyModel CreatePolicy(int seed)
    {
        var contexts = ContextVectors(seed);
        lock (TorchRuntime.GlobalSeedLock)
        {
            torch.manual_seed(seed);
            return new CategoricalPolicy(contexts, bandit.Hidden, bandit.Actions);
        }
    }

    /// <summary>The [P, ContextSize] context vectors: row k ~ N(0, I) from a generator seeded by (seed, k).</summary>
    public Tensor ContextVectors(int seed)
    {
        using var scope = NewDisposeScope();
        var rows = Enumerable.Range(0, bandit.Prompts).Select(k =>
        {
            using var generator = new Generator(ContextSeed(seed, k));
            return randn([bandit.ContextSize], generator: generator);   // [ContextSize]
        }).ToArray();
        return stack(rows).MoveToOuterDisposeScope();   // [P, ContextSize]
    }

    /// <summary>The generator seed of prompt k's context vector: the first 8 bytes of SHA-256("bandit-context", seed, k).</summary>
    public static ulong ContextSeed(int seed, int k)
    {
        Span<byte> input = stackalloc byte[22];
        "bandit-context"u8.CopyTo(input);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(input[14..], seed);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(input[18..], k);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(hash);
    }

    /// <summary>
    /// ReferenceSteps full-batch Adam steps (lr ReferenceLearningRate) minimising, over every prompt, the
    /// cross-entropy H(pi_data, pi(.|x)) = -sum_a pi_data(a) log pi(a|x). Deterministic (no sampling), so
    /// <paramref name="seed"/> is unused. Returns the cross-entropy after the last step (nats; at least H(pi_data)).
    /// </summary>
    public double FitReference(PolicyModel policy, int seed)
    {
        var model = Categorical(policy);
        model.train();
        using var target = tensor(dataDistribution.Select(p => (float)p).ToArray()).unsqueeze(0);   // [1, A]
        using var prompts = arange(model.Prompts, dtype: int64);                                       // [P]
        using (var optimizer = optim.Adam(model.parameters(), bandit.ReferenceLearningRate))
        {
            for (var step = 0; step < bandit.ReferenceSteps; step++)
            {
                using var _ = NewDisposeScope();
                optimizer.zero_grad();
                CrossEntropy(model, prompts, target).backward();
                optimizer.step();
            }
        }
        using var __ = NewDisposeScope();
        using var noGrad = no_grad();
        return CrossEntropy(model, prompts, target).item<float>();
    }

    private static Tensor CrossEntropy(CategoricalPolicy model, Tensor prompts, Tensor target)
    {
        var logProbs = nn.functional.log_softmax(model.forward(prompts), 1);   // [P, A]
        return -(target * logProbs).sum(1).mean();                             // []
    }

    /// <summary>
    /// C samples per prompt at the given temperature, from torch.multinomial with a generator seeded by
    /// <paramref name="seed"/>. Rollouts are group-major (all C of prompt 0, then prompt 1, ...), Group is
    /// the prompt's index in <paramref name="prompts"/>, SampleId is derived from (batchId, index).
    /// TokenLogProbs holds log pi(a|x) at temperature 1, i.e. under the policy itself (what the Learner's
    /// log-probs and importance ratios are measured against), whatever temperature sampled it.
    /// </summary>
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId)
    {
        var model = Categorical(policy);

        var promptIndex = prompts.Select(p => PromptIndex(p.Tokens, model, p.PromptId)).ToArray();
        long[] actions;
        float[] logProbs;
        using (var _ = NewDisposeScope())
        using (no_grad())
        using (var generator = new Generator(unchecked((ulong)seed)))
        {
            var logits = model.forward(tensor(promptIndex));                                       // [G, A]
            var probs = nn.functional.softmax(logits / temperature, 1);                             // [G, A]
            var sampled = multinomial(probs, responsesPerPrompt, replacement: true, generator: generator);   // [G, C]
            var chosen = nn.functional.log_softmax(logits, 1).gather(1, sampled);                  // [G, C]
            actions = sampled.reshape(-1).data<long>().ToArray();                                  // [G*C], group-major
            logProbs = chosen.reshape(-1).data<float>().ToArray();
        }

        var rollouts = new List<Rollout>(actions.Length);
        for (var i = 0; i < actions.Length; i++)
        {
            var group = i / responsesPerPrompt;
            rollouts.Add(new Rollout
            {
                SampleId = SampleIds.Of(batchId, i),
                PromptId = prompts[group].PromptId,
                Group = group,
                PromptTokens = [.. prompts[group].Tokens],
                ResponseTokens = [(int)actions[i]],
                TokenLogProbs = [logProbs[i]],
                PolicyVersion = policyVersion,
            });
        }
        return rollouts;
    }

    /// <summary>log pi(y|x) for each rollout: [N], with the gradient when the policy's parameters carry it.
    /// log pi(a|x).</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var model = Categorical(policy);
        using var scope = NewDisposeScope();
        var prompts = tensor(rollouts.Select(r => PromptIndex(r.PromptTokens, model, r.PromptId)).ToArray());   // [N]
        var actions = tensor(rollouts.Select(r => (long)ActionOf(r)).ToArray());                                 // [N]
        var logProbs = nn.functional.log_softmax(model.forward(prompts), 1);                                     // [N, A]
        return logProbs.gather(1, actions.unsqueeze(1)).squeeze(1).MoveToOuterDisposeScope();                   // [N]
    }

    /// <summary>pi(.|x) for every prompt of the policy: [P, A] probabilities, no gradient.</summary>
    public static Tensor ActionProbabilities(PolicyModel policy)
    {
        var model = Categorical(policy);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return nn.functional.softmax(model.forward(arange(model.Prompts, dtype: int64)), 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Exact E[r(a)] under the policy, averaged over its prompts (no sampling; the other arguments are unused).
    /// </summary>
    public double ExpectedGoldReward(PolicyModel policy, int samplesPerPrompt, long seed)
    {
        using var scope = NewDisposeScope();
        var probs = ActionProbabilities(policy);                                          // [P, A]
        var rewards = tensor(goldRewards.Select(r => (float)r).ToArray());                // [A]
        return (probs * rewards).sum(1).mean().item<float>();
    }

    public int ActionOf(Rollout rollout)
    {
        if (rollout.ResponseTokens.Length != 1)
            throw new ArgumentException($"bandit rollout {rollout.SampleId}: a response is one action token, got {rollout.ResponseTokens.Length}");
        var action = rollout.ResponseTokens[0];
        if (action < 0 || action >= bandit.Actions)
            throw new ArgumentException($"bandit rollout {rollout.SampleId}: action {action} is outside [0, {bandit.Actions})");
        return action;
    }

    private static long PromptIndex(int[] tokens, CategoricalPolicy model, string promptId)
    {
        if (tokens.Length != 1 || tokens[0] < 0 || tokens[0] >= model.Prompts)
            throw new ArgumentException($"bandit prompt '{promptId}': expected one token in [0, {model.Prompts}), got [{string.Join(", ", tokens)}]");
        return tokens[0];
    }

    private static CategoricalPolicy Categorical(PolicyModel policy) => policy as CategoricalPolicy
        ?? throw new ArgumentException($"the bandit's categorical policy expected, got {policy.GetType().Name}", nameof(policy));
}

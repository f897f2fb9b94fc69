using System.Buffers.Binary;
using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Training.Policies;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.Tasks.Bandit;

/// <summary>
/// The combinatorial bandit (PAPER.md, Problem 1, policy (b)): <see cref="BanditTask"/>'s policy "gpt".
/// The prompt is one token k &lt; Prompts; the response is R = ResponseLength tokens, each an action in [0, A),
/// sampled autoregressively by a <see cref="TinyGpt"/> whose vocabulary is the A actions (prompt ids share
/// it) and whose block is 1 + R. The gold reward of a response is the mean of r(a) over its tokens.
/// </summary>
internal sealed class GptBandit(BanditSpec bandit, double[] dataDistribution, double[] goldRewards) : IBanditFamily
{
    public static PolicyKind Descriptor { get; } = BanditTask.PolicyKind("gpt",
        "a tiny GPT over the A actions as its vocabulary, response_length actions per response, with a value head",
        (b, data, gold) => new GptBandit(b, data, gold), Footprint) with { ScoresTokens = true };

    /// <summary>
    /// The memory of this policy and its samples from the spec alone: the tiny GPT keeps about 24 d numbers per layer and
    /// 8 V per position in a gradient step, and a KV cache and logits while sampling. The factors were fitted to one
    /// measured run (the default gpt bandit at B = M = 20,000 peaked 233 KB per sample above B = 100; these factors, with
    /// the rollout's own records, say 267 KB).
    /// </summary>
    public static TaskFootprint Footprint(BanditSpec b)
    {
        double positions = 1 + (double)b.ResponseLength, d = b.Width, v = b.Actions, layers = b.Layers;
        return new TaskFootprint
        {
            Weights = TinyGpt.ParameterCount(b.Actions, 1 + b.ResponseLength, b.Layers, b.Width),
            WeightFields = [new("actions", b.Actions), new("response_length", b.ResponseLength), new("layers", b.Layers), new("width", b.Width)],
            TokensPerRollout = positions,
            TrainingNumbersPerSample = positions * (layers * (24 * d + 3 * b.Heads * positions) + 8 * v),
            InferenceNumbersPerSample = positions * (layers * 10 * d + 3 * v),
            SampleFields = [new("actions", b.Actions), new("response_length", b.ResponseLength), new("layers", b.Layers), new("heads", b.Heads), new("width", b.Width)],
        };
    }

    /// <summary>Sequences per prompt in each step of the reference fit (8 prompts: 64 sequences a step).</summary>
    public const int ReferenceSequencesPerPrompt = 8;

    private int R => bandit.ResponseLength;

    /// <summary>torch.manual_seed(seed) and a fresh TinyGpt, under <see cref="TorchRuntime.GlobalSeedLock"/>.</summary>
    public PolicyModel CreatePolicy(int seed)
    {
        lock (TorchRuntime.GlobalSeedLock)
        {
            torch.manual_seed(seed);
            return new TinyGpt(bandit.Actions, 1 + R, bandit.Layers, bandit.Heads, bandit.Width);
        }
    }

    /// <summary>
    /// "The network first fitted to pi_data (100 Adam steps, lr 0.01)": ReferenceSteps Adam steps at
    /// ReferenceLearningRate minimising, at every response position, the cross-entropy
    /// H(pi_data, pi(.|x, y_&lt;t)) = -sum_a pi_data(a) log pi(a|x, y_&lt;t).
    /// </summary>
    /// <remarks>
    /// The contexts y_&lt;t come from pi_data itself: each step draws, for every prompt,
    /// <see cref="ReferenceSequencesPerPrompt"/> teacher-forced sequences [k, y_1..y_{R-1}] with y_i iid from
    /// pi_data, by a generator seeded from SHA-256("bandit-reference", seed). The target at every position is
    /// the whole distribution pi_data (not the sampled next token), which has lower variance than a sampled
    /// target and the same minimiser: a policy whose every next-token distribution is pi_data, i.e. which
    /// generates responses of iid pi_data tokens. Returns the cross-entropy of one more fresh batch after the
    /// last step (nats; at least H(pi_data)).
    /// </remarks>
    public double FitReference(PolicyModel policy, int seed)
    {
        var model = Gpt(policy);
        model.train();
        using var target = tensor(dataDistribution.Select(p => (float)p).ToArray());                                  // [V]
        using var prompts = arange(bandit.Prompts, dtype: ScalarType.Int64).repeat_interleave(ReferenceSequencesPerPrompt);   // [N]
        using var generator = new Generator(SeedOf("bandit-reference", seed));
        using (var optimizer = optim.Adam(model.parameters(), bandit.ReferenceLearningRate))
        {
            for (var step = 0; step < bandit.ReferenceSteps; step++)
            {
                using var _ = NewDisposeScope();
                optimizer.zero_grad();
                CrossEntropy(model, prompts, target, generator).backward();
                optimizer.step();
            }
        }
        using var __ = NewDisposeScope();
        using var noGrad = no_grad();
        return CrossEntropy(model, prompts, target, generator).item<float>();
    }

    /// <summary>Mean over sequences and response positions of H(pi_data, pi(.|context)), contexts from pi_data: [].</summary>
    private Tensor CrossEntropy(TinyGpt model, Tensor prompts, Tensor target, Generator generator)
    {
        var n = prompts.shape[0];
        var inputs = prompts.unsqueeze(1);                                                                 // (N, 1)
        if (R > 1)
        {
            var contexts = multinomial(target, n * (R - 1), replacement: true, generator: generator).view(n, R - 1);   // (N, R-1)
            inputs = cat([inputs, contexts], 1);                                                           // (N, R): k, y_1..y_{R-1}
        }
        var logProbs = F.log_softmax(model.forward(inputs), -1);   // (N, R, V): position t predicts y_{t+1}
        return -(target * logProbs).sum(-1).mean();                // []
    }

    /// <summary>
    /// C responses per prompt, group-major, sampled with the KV cache from a generator seeded by
    /// <paramref name="seed"/>; TokenLogProbs are the R per-token log-probs at temperature 1.
    /// </summary>
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId)
    {
        var model = Gpt(policy);
        var promptTokens = prompts.Select(p => PromptToken(p.Tokens, p.PromptId)).ToArray();
        var n = promptTokens.Length * responsesPerPrompt;
        long[] tokens;
        float[] logProbs;
        using (var _ = NewDisposeScope())
        using (var generator = new Generator(unchecked((ulong)seed)))
        {
            var inputs = tensor(promptTokens).repeat_interleave(responsesPerPrompt).unsqueeze(1);   // (N, 1), group-major
            var (sampled, scored) = model.Sample(inputs, R, temperature, generator);               // (N, R), (N, R)
            tokens = sampled.reshape(-1).data<long>().ToArray();                                  // [N*R], row-major
            logProbs = scored.reshape(-1).data<float>().ToArray();
        }

        var rollouts = new List<Rollout>(n);
        for (var i = 0; i < n; i++)
        {
            var group = i / responsesPerPrompt;
            rollouts.Add(new Rollout
            {
                SampleId = SampleIds.Of(batchId, i),
                PromptId = prompts[group].PromptId,
                Group = group,
                PromptTokens = [.. prompts[group].Tokens],
                ResponseTokens = Enumerable.Range(i * R, R).Select(j => (int)tokens[j]).ToArray(),
                TokenLogProbs = logProbs.AsSpan(i * R, R).ToArray(),
                PolicyVersion = policyVersion,
            });
        }
        return rollouts;
    }

    /// <summary>log pi(y|x), the sum of the R token log-probs (token t scored by the logits at t - 1): [N], with grad.</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var model = Gpt(policy);
        using var scope = NewDisposeScope();
        return model.SequenceLogProbs(Sequences(rollouts), promptLength: 1).MoveToOuterDisposeScope();   // [N]
    }

    /// <summary>The R token log-probs and the value head's V(x, y_&lt;t) of every rollout: [N, R] each, with grad.</summary>
    public TokenScores ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        var model = Gpt(policy);
        using var scope = NewDisposeScope();
        var (logProbs, values) = model.TokenLogProbsAndValues(Sequences(rollouts), promptLength: 1);   // (N, R), (N, R)
        return new TokenScores(logProbs.MoveToOuterDisposeScope(), values.MoveToOuterDisposeScope());
    }

    /// <summary>[k, y_1..y_R] of every rollout: (N, 1 + R) int64, in the caller's dispose scope.</summary>
    private Tensor Sequences(IReadOnlyList<Rollout> rollouts)
    {
        var flat = new long[rollouts.Count * (1 + R)];
        for (var i = 0; i < rollouts.Count; i++)
        {
            flat[i * (1 + R)] = PromptToken(rollouts[i].PromptTokens, rollouts[i].PromptId);
            var response = ResponseOf(rollouts[i]);
            for (var t = 0; t < R; t++) flat[i * (1 + R) + 1 + t] = response[t];
        }
        return tensor(flat).view(rollouts.Count, 1 + R);   // (N, 1 + R)
    }

    /// <summary>The mean of r(a) over the response's R tokens.</summary>
    public double GoldReward(Rollout rollout) => ResponseOf(rollout).Average(a => goldRewards[a]);

    /// <summary>
    /// E[mean_t r(y_t)] under the policy at temperature 1, averaged over the prompts: samples
    /// <paramref name="samplesPerPrompt"/> responses per prompt (generator seeded by <paramref name="seed"/>)
    /// and averages, at every response position, the exact expectation sum_a pi(a|x, y_&lt;t) r(a) given the
    /// sampled context (lower variance than the sampled tokens' rewards, same mean).
    /// </summary>
    public double ExpectedGoldReward(PolicyModel policy, int samplesPerPrompt, long seed)
    {
        var model = Gpt(policy);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var generator = new Generator(unchecked((ulong)seed));
        var prompts = arange(bandit.Prompts, dtype: ScalarType.Int64).repeat_interleave(samplesPerPrompt).unsqueeze(1);   // (N, 1)
        var (tokens, _) = model.Sample(prompts, R, 1.0, generator);                                    // (N, R)
        var contexts = cat([prompts, tokens], 1).narrow(1, 0, R);                                      // (N, R): k, y_1..y_{R-1}
        var probs = F.softmax(model.forward(contexts), -1);                                            // (N, R, V)
        var rewards = tensor(goldRewards.Select(r => (float)r).ToArray());                             // [V]
        return (probs * rewards).sum(-1).mean().item<float>();
    }

    private int[] ResponseOf(Rollout rollout)
    {
        var tokens = rollout.ResponseTokens;
        if (tokens.Length != R)
            throw new ArgumentException($"bandit rollout {rollout.SampleId}: a gpt response is {R} action tokens, got {tokens.Length}");
        foreach (var a in tokens)
            if (a < 0 || a >= bandit.Actions)
                throw new ArgumentException($"bandit rollout {rollout.SampleId}: action {a} is outside [0, {bandit.Actions})");
        return tokens;
    }

    private long PromptToken(int[] tokens, string promptId)
    {
        if (tokens.Length != 1 || tokens[0] < 0 || tokens[0] >= bandit.Prompts)
            throw new ArgumentException($"bandit prompt '{promptId}': expected one token in [0, {bandit.Prompts}), got [{string.Join(", ", tokens)}]");
        return tokens[0];
    }

    private static TinyGpt Gpt(PolicyModel policy) => policy as TinyGpt
        ?? throw new ArgumentException($"the bandit's gpt policy expected, got {policy.GetType().Name}", nameof(policy));

    /// <summary>A generator seed: the first 8 bytes of SHA-256(label, seed).</summary>
    private static ulong SeedOf(string label, int seed)
    {
        var input = new byte[System.Text.Encoding.UTF8.GetByteCount(label) + 4];
        System.Text.Encoding.UTF8.GetBytes(label, input);
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(input.Length - 4), seed);
        return BinaryPrimitives.ReadUInt64BigEndian(SHA256.HashData(input));
    }
}

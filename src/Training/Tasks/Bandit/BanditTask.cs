using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Training.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks.Bandit;

/// <summary>
/// The didactic bandit of Tajwar et al. 2024 (PAPER.md, Problem 1). With the "categorical" policy a prompt
/// is one token k naming a fixed random context vector and a response is one token, the action a in [0, A);
/// with the "gpt" policy (<see cref="GptBandit"/>) the prompt is the token k itself and a response is
/// ResponseLength action tokens. The reference data pi_data is the histogram of tanh(Cauchy(loc, scale)) in
/// A equal bins on [-1, 1]; the gold reward is r(a) = exp(-((a - c) / w)^2), averaged over a response's tokens.
/// </summary>
/// <remarks>
/// Prompt k's context vector is drawn from N(0, I) by a generator seeded from (run seed, k) when the
/// policy is built, and stored as a buffer in the policy (so every checkpoint carries it). Immutable
/// and thread-safe; the policies it builds are not.
/// </remarks>
public sealed class BanditTask : IPreferenceTask
{
    private readonly BanditSpec _bandit;
    private readonly double[] _goldRewards;
    private readonly GptBandit? _gpt;   // set when Policy is "gpt"; every policy-specific call goes to it

    public BanditTask(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Kind != "bandit") throw new ArgumentException($"task.kind: expected 'bandit', got '{spec.Kind}'", nameof(spec));
        _bandit = spec.Bandit ?? new BanditSpec();
        Validate(_bandit);
        Spec = spec;
        DataDistribution = DataDistributionOf(_bandit.Actions, _bandit.DataLocation, _bandit.DataScale);
        _goldRewards = Enumerable.Range(0, _bandit.Actions).Select(a => Reward(a, _bandit.RewardCenter, _bandit.RewardWidth)).ToArray();
        _gpt = _bandit.Policy == "gpt" ? new GptBandit(_bandit, DataDistribution, _goldRewards) : null;
    }

    /// <summary>Known values of <see cref="BanditSpec.Policy"/>.</summary>
    public static IReadOnlyList<string> Policies { get; } = ["categorical", "gpt"];

    public TaskSpec Spec { get; }

    /// <summary>The bandit block in force (the spec's, or the defaults when it has none).</summary>
    public BanditSpec Bandit => _bandit;

    /// <summary>pi_data: probability of each of the A actions, exact from the Cauchy CDF; sums to 1.</summary>
    public double[] DataDistribution { get; }

    /// <summary>r(a) for every action a.</summary>
    public IReadOnlyList<double> GoldRewards => _goldRewards;

    /// <summary>
    /// Histogram of tanh(X), X ~ Cauchy(loc, scale), in <paramref name="actions"/> equal bins on [-1, 1]:
    /// bin i covers X in [atanh(-1 + 2i/A), atanh(-1 + 2(i+1)/A)], the outer edges at -inf and +inf,
    /// and gets F(hi) - F(lo) with F(x) = 1/2 + atan((x - loc) / scale) / pi.
    /// </summary>
    public static double[] DataDistributionOf(int actions, double location, double scale)
    {
        double Cdf(int edge) =>
            edge <= 0 ? 0.0
            : edge >= actions ? 1.0
            : 0.5 + Math.Atan((Math.Atanh(-1.0 + 2.0 * edge / actions) - location) / scale) / Math.PI;
        return Enumerable.Range(0, actions).Select(i => Cdf(i + 1) - Cdf(i)).ToArray();
    }

    /// <summary>The gold reward r(a) = exp(-((a - c) / w)^2).</summary>
    public static double Reward(int action, double center, double width) =>
        Math.Exp(-Math.Pow((action - center) / width, 2));

    /// <summary>Prompts "p0".."p{P-1}" with tokens [k]. The same for every seed: the seed lives in the context vectors.</summary>
    public IReadOnlyList<Prompt> PromptPool(int seed) =>
        Enumerable.Range(0, _bandit.Prompts).Select(k => new Prompt { PromptId = $"p{k}", Tokens = [k] }).ToList();

    /// <summary>
    /// torch.manual_seed(seed), then the MLP's initialisation, under <see cref="TorchRuntime.GlobalSeedLock"/>
    /// so concurrent builders cannot interleave draws; the contexts come from their own (seed, k) generators.
    /// The "gpt" policy: a <see cref="TinyGpt"/> initialised the same way (it has no context vectors).
    /// </summary>
    public PolicyModel CreatePolicy(int seed)
    {
        if (_gpt is not null) return _gpt.CreatePolicy(seed);
        var contexts = ContextVectors(seed);
        lock (TorchRuntime.GlobalSeedLock)
        {
            torch.manual_seed(seed);
            return _bandit.Policy switch
            {
                "categorical" => new CategoricalPolicy(contexts, _bandit.Hidden, _bandit.Actions),
                _ => throw new ArgumentException($"task.bandit.policy: unknown policy '{_bandit.Policy}'; known: {string.Join(", ", Policies)}"),
            };
        }
    }

    /// <summary>The [P, ContextSize] context vectors: row k ~ N(0, I) from a generator seeded by (seed, k).</summary>
    public Tensor ContextVectors(int seed)
    {
        using var scope = NewDisposeScope();
        var rows = Enumerable.Range(0, _bandit.Prompts).Select(k =>
        {
            using var generator = new Generator(ContextSeed(seed, k));
            return randn([_bandit.ContextSize], generator: generator);   // [ContextSize]
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
    /// The "gpt" policy: <see cref="GptBandit.FitReference"/> (every response position, pi_data contexts).
    /// </summary>
    public double FitReference(PolicyModel policy, int seed)
    {
        if (_gpt is not null) return _gpt.FitReference(policy, seed);
        var model = Categorical(policy);
        model.train();
        using var target = tensor(DataDistribution.Select(p => (float)p).ToArray()).unsqueeze(0);   // [1, A]
        using var prompts = arange(model.Prompts, dtype: int64);                                       // [P]
        using (var optimizer = optim.Adam(model.parameters(), _bandit.ReferenceLearningRate))
        {
            for (var step = 0; step < _bandit.ReferenceSteps; step++)
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
    /// The "gpt" policy: ResponseLength tokens per response, sampled autoregressively (<see cref="GptBandit.Generate"/>).
    /// </summary>
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId)
    {
        if (responsesPerPrompt < 1) throw new ArgumentOutOfRangeException(nameof(responsesPerPrompt), responsesPerPrompt, "C must be at least 1");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be positive");
        if (prompts.Count == 0) return [];
        if (_gpt is not null) return _gpt.Generate(policy, prompts, responsesPerPrompt, temperature, seed, policyVersion, batchId);
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
                SampleId = SampleIdOf(batchId, i),
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
    /// Categorical: log pi(a|x); "gpt": the sum of the response tokens' log-probs.</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts)
    {
        if (_gpt is not null) return _gpt.SequenceLogProbs(policy, rollouts);
        var model = Categorical(policy);
        using var scope = NewDisposeScope();
        var prompts = tensor(rollouts.Select(r => PromptIndex(r.PromptTokens, model, r.PromptId)).ToArray());   // [N]
        var actions = tensor(rollouts.Select(r => (long)ActionOf(r)).ToArray());                                 // [N]
        var logProbs = nn.functional.log_softmax(model.forward(prompts), 1);                                     // [N, A]
        return logProbs.gather(1, actions.unsqueeze(1)).squeeze(1).MoveToOuterDisposeScope();                   // [N]
    }

    /// <summary>"gpt": the R token log-probs and value estimates (<see cref="GptBandit.ScoreTokens"/>); the categorical
    /// policy has one action per response and no value head, so null.</summary>
    public TokenScores? ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => _gpt?.ScoreTokens(policy, rollouts);

    /// <summary>r(a) of the rollout's action; "gpt": the mean of r(a) over its ResponseLength tokens.</summary>
    public double GoldReward(Rollout rollout) => _gpt?.GoldReward(rollout) ?? _goldRewards[ActionOf(rollout)];

    /// <summary>pi(.|x) for every prompt of the policy: [P, A] probabilities, no gradient.</summary>
    public Tensor ActionProbabilities(PolicyModel policy)
    {
        var model = Categorical(policy);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return nn.functional.softmax(model.forward(arange(model.Prompts, dtype: int64)), 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Categorical: exact E[r(a)] under the policy, averaged over its prompts (no sampling; the other
    /// arguments are unused). "gpt": the expected per-token gold reward at temperature 1, estimated from
    /// <paramref name="samplesPerPrompt"/> sampled responses per prompt (<see cref="GptBandit.ExpectedGoldReward"/>).
    /// </summary>
    public double ExpectedGoldReward(PolicyModel policy, int samplesPerPrompt = 128, long seed = 0)
    {
        if (_gpt is not null) return _gpt.ExpectedGoldReward(policy, samplesPerPrompt, seed);
        using var scope = NewDisposeScope();
        var probs = ActionProbabilities(policy);                                          // [P, A]
        var rewards = tensor(_goldRewards.Select(r => (float)r).ToArray());                // [A]
        return (probs * rewards).sum(1).mean().item<float>();
    }

    /// <summary>Expected gold reward under pi_data.</summary>
    public double DataExpectedGoldReward => DataDistribution.Select((p, a) => p * _goldRewards[a]).Sum();

    /// <summary>
    /// The memory of this bandit's policy and samples from its spec alone. Per-sample sizes: the categorical MLP keeps
    /// context + 2 hidden + A numbers per sample, three times over in a gradient step (activations, gradients,
    /// temporaries); the tiny GPT keeps about 24 d numbers per layer and 8 V per position in a gradient step, and a KV
    /// cache and logits while sampling. The GPT's factors were fitted to one measured run (the default gpt bandit at
    /// B = M = 20,000 peaked 233 KB per sample above B = 100; these factors, with the rollout's own records, say 267 KB).
    /// </summary>
    public static TaskFootprint Footprint(BanditSpec b)
    {
        if (b.Policy == "gpt")
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

    /// <summary>A deterministic sample id: the first 16 bytes of SHA-256(batchId, index), marked RFC 9562 version 8.</summary>
    public static Guid SampleIdOf(Guid batchId, int index)
    {
        Span<byte> input = stackalloc byte[20];
        batchId.TryWriteBytes(input[..16], bigEndian: true, out _);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(input[16..], index);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80);   // version 8 (custom)
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);   // RFC 9562 variant
        return new Guid(hash[..16], bigEndian: true);
    }

    private int ActionOf(Rollout rollout)
    {
        if (rollout.ResponseTokens.Length != 1)
            throw new ArgumentException($"bandit rollout {rollout.SampleId}: a response is one action token, got {rollout.ResponseTokens.Length}");
        var action = rollout.ResponseTokens[0];
        if (action < 0 || action >= _bandit.Actions)
            throw new ArgumentException($"bandit rollout {rollout.SampleId}: action {action} is outside [0, {_bandit.Actions})");
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

    private static void Validate(BanditSpec b)
    {
        static void Require(bool ok, string field, object value, string rule)
        {
            if (!ok) throw new ArgumentException($"task.bandit.{field}: {value} is invalid; {rule}");
        }
        Require(b.Actions >= 2, "actions", b.Actions, "at least 2");
        Require(b.RewardWidth > 0, "reward_width", b.RewardWidth, "must be positive");
        Require(b.DataScale > 0, "data_scale", b.DataScale, "must be positive");
        Require(b.ContextSize >= 1, "context_size", b.ContextSize, "at least 1");
        Require(b.Hidden >= 1, "hidden", b.Hidden, "at least 1");
        Require(b.Prompts >= 1, "prompts", b.Prompts, "at least 1");
        Require(b.ReferenceSteps >= 0, "reference_steps", b.ReferenceSteps, "at least 0");
        Require(b.ReferenceLearningRate > 0, "reference_learning_rate", b.ReferenceLearningRate, "must be positive");
        Require(Policies.Contains(b.Policy), "policy", $"'{b.Policy}'", $"known: {string.Join(", ", Policies)}");
        if (b.Policy != "gpt") return;
        Require(b.Prompts <= b.Actions, "prompts", b.Prompts, $"at most actions ({b.Actions}): a gpt prompt is one token of the action vocabulary");
        Require(b.ResponseLength >= 1, "response_length", b.ResponseLength, "at least 1");
        Require(b.Layers >= 1, "layers", b.Layers, "at least 1");
        Require(b.Heads >= 1, "heads", b.Heads, "at least 1");
        Require(b.Width >= 1 && b.Width % Math.Max(b.Heads, 1) == 0, "width", b.Width, $"a positive multiple of heads ({b.Heads})");
    }
}

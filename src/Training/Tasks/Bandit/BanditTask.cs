using PrefTune.Messages;
using PrefTune.Training.Policies;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks.Bandit;

/// <summary>What the bandit asks of its policy family beyond <see cref="IPolicyFamily"/>: the gold reward depends on the
/// response's shape (one action, or R of them), and so does its expectation.</summary>
internal interface IBanditFamily : IPolicyFamily
{
    double GoldReward(Rollout rollout);
    double ExpectedGoldReward(PolicyModel policy, int samplesPerPrompt, long seed);
}

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
    private readonly IBanditFamily _family;   // the registered policy kind named by Policy; every policy-specific call goes to it

    public static TaskKind Descriptor { get; } = new()
    {
        Name = "bandit",
        Summary = "the didactic bandit of Tajwar et al. (PAPER.md, Problem 1): A actions, gold reward exp(-((a - c) / w)^2)",
        Create = spec => new BanditTask(spec),
        PolicyOf = spec => BlockOf(spec).Policy,
    };

    public BanditTask(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Kind != "bandit") throw new ArgumentException($"task.kind: expected 'bandit', got '{spec.Kind}'", nameof(spec));
        _bandit = BlockOf(spec);
        Validate(_bandit);
        Spec = spec;
        DataDistribution = DataDistributionOf(_bandit.Actions, _bandit.DataLocation, _bandit.DataScale);
        _goldRewards = GoldRewardsOf(_bandit);
        _family = (IBanditFamily)PolicyRegistry.Get(Descriptor.Name, _bandit.Policy).Create(spec);
    }

    /// <summary>Known values of <see cref="BanditSpec.Policy"/>: the policy kinds registered for the bandit.</summary>
    public static IReadOnlyList<string> Policies => PolicyRegistry.NamesFor("bandit");

    /// <summary>A policy kind of the bandit: the family is built from the spec's bandit block (or the defaults) with pi_data
    /// and r(a) computed from it, and so is its footprint.</summary>
    internal static PolicyKind PolicyKind(string name, string summary, Func<BanditSpec, double[], double[], IBanditFamily> create,
        Func<BanditSpec, TaskFootprint> footprint) => new()
    {
        Name = name,
        Summary = summary,
        Tasks = ["bandit"],
        Create = spec =>
        {
            var b = BlockOf(spec);
            return create(b, DataDistributionOf(b.Actions, b.DataLocation, b.DataScale), GoldRewardsOf(b));
        },
        Footprint = spec => footprint(BlockOf(spec)),
    };

    private static BanditSpec BlockOf(TaskSpec spec) => spec.Bandit ?? new BanditSpec();

    private static double[] GoldRewardsOf(BanditSpec b) =>
        Enumerable.Range(0, b.Actions).Select(a => Reward(a, b.RewardCenter, b.RewardWidth)).ToArray();

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

    /// <summary>A fresh policy of the bandit's family (see <see cref="CategoricalBandit"/>, <see cref="GptBandit"/>).</summary>
    public PolicyModel CreatePolicy(int seed) => _family.CreatePolicy(seed);

    /// <summary>Fits a fresh policy to pi_data; returns the final cross-entropy (nats; at least H(pi_data)).</summary>
    public double FitReference(PolicyModel policy, int seed) => _family.FitReference(policy, seed);

    /// <summary>C samples per prompt, group-major (all C of prompt 0, then prompt 1, ...), with log pi at temperature 1.</summary>
    public IReadOnlyList<Rollout> Generate(PolicyModel policy, IReadOnlyList<Prompt> prompts, int responsesPerPrompt,
        double temperature, long seed, int policyVersion, Guid batchId)
    {
        if (responsesPerPrompt < 1) throw new ArgumentOutOfRangeException(nameof(responsesPerPrompt), responsesPerPrompt, "C must be at least 1");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be positive");
        if (prompts.Count == 0) return [];
        return _family.Generate(policy, prompts, responsesPerPrompt, temperature, seed, policyVersion, batchId);
    }

    /// <summary>log pi(y|x) for each rollout: [N], with the gradient when the policy's parameters carry it.</summary>
    public Tensor SequenceLogProbs(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => _family.SequenceLogProbs(policy, rollouts);

    /// <summary>"gpt": the R token log-probs and value estimates; the categorical policy has one action per response and no
    /// value head, so null.</summary>
    public TokenScores? ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) => _family.ScoreTokens(policy, rollouts);

    /// <summary>r(a) of the rollout's action; "gpt": the mean of r(a) over its ResponseLength tokens.</summary>
    public double GoldReward(Rollout rollout) => _family.GoldReward(rollout);

    /// <summary>pi(.|x) for every prompt of a categorical policy: [P, A] probabilities, no gradient.</summary>
    public Tensor ActionProbabilities(PolicyModel policy) => CategoricalBandit.ActionProbabilities(policy);

    /// <summary>Categorical: exact E[r(a)] under the policy, averaged over its prompts. "gpt": the expected per-token gold
    /// reward at temperature 1, estimated from <paramref name="samplesPerPrompt"/> sampled responses per prompt.</summary>
    public double ExpectedGoldReward(PolicyModel policy, int samplesPerPrompt = 128, long seed = 0) =>
        _family.ExpectedGoldReward(policy, samplesPerPrompt, seed);

    /// <summary>Expected gold reward under pi_data.</summary>
    public double DataExpectedGoldReward => DataDistribution.Select((p, a) => p * _goldRewards[a]).Sum();

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

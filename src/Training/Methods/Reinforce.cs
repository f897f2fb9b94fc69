using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// REINFORCE with a running-mean baseline (PAPER.md, Losses): L = -mean over samples of
/// clamp(r~ - b, -10, 10) * log pi(y|x), on-policy only.
/// <para>KL penalty (kl_coef = beta, default 0): the reward is shaped, r~ = r - beta * (log pi(y) - log pi_ref(y))
/// with the log-ratio detached, which is the score-function gradient of E_pi[r] - beta KL(pi || pi_ref) (its
/// extra constant -beta is absorbed by the baseline). With kl_coef = 0, r~ = r.</para>
/// <para>Baseline: b = 0 before the first batch, so the first batch is plain REINFORCE; after each
/// batch's loss is computed, b is updated from that batch's mean shaped reward: the first batch sets
/// b = mean(r~), later ones b = m b + (1 - m) mean(r~) with m = baseline_momentum. A batch never baselines
/// itself, and b carries no start-at-zero bias. The state lives in the loss instance, one per run.</para>
/// <para>Truncated importance weights (is_clip = c, default 0 = off): with c &gt; 0 each sample's term is multiplied by
/// the detached w = min(pi(y|x) / pi_old(y|x), c), pi_old the policy that sampled y, so a sample drawn by an older
/// policy (B &gt; M, or an asynchronous sampler) is reweighted towards the learner's policy, with the weight capped at c
/// to bound the variance (truncated importance sampling, Ionides 2008; c = 1 only ever down-weights).</para>
/// </summary>
public sealed class Reinforce(double momentum, double klCoef, double isClip = 0) : IPreferenceLoss, IStatefulLoss
{
    /// <summary>Weights (r~ - b) are clipped to [-10, 10] (the paper's clip).</summary>
    public const double WeightClip = 10;

    private static readonly Dictionary<string, double> DefaultParameters = new() { ["baseline_momentum"] = 0.9, ["kl_coef"] = 0, ["is_clip"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "reinforce",
        Summary = "-(r - b) log pi(y|x) with b a running mean of the rewards; optional KL penalty to pi_ref and truncated importance weights (is_clip)",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: false, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("reinforce", DefaultParameters, given);
            return new Reinforce(p.Require("reinforce", "baseline_momentum", m => m >= 0 && m < 1, "in [0, 1)"),
                p.Require("reinforce", "kl_coef", k => k >= 0, "at least 0"),
                p.Require("reinforce", "is_clip", IsClipValid, IsClipRule));
        },
    };

    /// <summary>The baseline the next batch will use (0 before any batch).</summary>
    public double Baseline { get; private set; }

    /// <summary>Batches seen so far.</summary>
    public int Batches { get; private set; }

    public LossOutput Compute(GroupBatch batch)
    {
        var logRatio = (batch.LogProbs - batch.RefLogProbs).detach();            // [G, C] log pi/pi_ref
        var shaped = batch.Rewards.detach() - klCoef * logRatio;                   // [G, C] r~
        var weight = (shaped - Baseline).clamp(-WeightClip, WeightClip);          // [G, C]
        var terms = weight * batch.LogProbs;                                       // [G, C]
        var metrics = new Dictionary<string, Tensor>
        {
            ["baseline"] = tensor((float)Baseline),
            ["rewards/mean"] = batch.Rewards.detach().mean(),
            ["advantages/mean"] = weight.mean(),
            ["objective/kl"] = logRatio.mean(),
        };
        if (isClip > 0) terms = TruncatedImportanceWeight(batch, isClip, metrics) * terms;   // [G, C]
        var loss = -terms.mean();                                                  // []

        var batchMean = shaped.mean().item<float>();
        Baseline = Batches == 0 ? batchMean : momentum * Baseline + (1 - momentum) * batchMean;
        Batches++;
        return new LossOutput(loss, metrics);
    }

    public IReadOnlyDictionary<string, double> SaveState() => new Dictionary<string, double> { ["baseline"] = Baseline, ["batches"] = Batches };

    public void LoadState(IReadOnlyDictionary<string, double> state)
    {
        Baseline = state["baseline"];
        Batches = (int)state["batches"];
    }

    /// <summary>is_clip: 0 (off) or at least 1.</summary>
    internal static bool IsClipValid(double c) => c == 0 || (c >= 1 && double.IsFinite(c));

    internal const string IsClipRule = "0 (off) or at least 1 and finite";

    /// <summary>
    /// w = min(pi(y|x) / pi_old(y|x), isClip), detached: [G, C]; the log-ratio is clamped to +-20 before exp. Adds
    /// "is/weight_mean" and "is/truncated_frac" (the share of samples whose weight was capped) to <paramref name="metrics"/>.
    /// </summary>
    public static Tensor TruncatedImportanceWeight(GroupBatch batch, double isClip, Dictionary<string, Tensor> metrics)
    {
        var ratio = (batch.LogProbs - batch.SamplingLogProbs).detach().clamp(-Grpo.MaxLogRatio, Grpo.MaxLogRatio).exp();   // [G, C]
        var weight = ratio.clamp_max(isClip);                                                                             // [G, C]
        metrics["is/weight_mean"] = weight.mean();
        metrics["is/truncated_frac"] = (ratio > isClip).to_type(ScalarType.Float32).mean();
        return weight;
    }
}

using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// GRPO (Shao et al. 2024, DeepSeekMath, eq. 3), at the sequence level: group-normalised advantages
/// A_i = (r_i - mean_j r_j) / (std_j r_j + 1e-4) over the C responses to a prompt (unbiased std, as TRL), then
/// PPO's clipped surrogate against the sampling policy with rho_i = pi(y_i|x) / pi_old(y_i|x):
///   L = mean_i [ -min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps) A_i) / |y_i| ] + kl_coef * mean_i k3_i,
///   k3_i = exp(log pi_ref(y_i) - log pi(y_i)) - (log pi_ref(y_i) - log pi(y_i)) - 1 (Schulman's k3, &gt;= 0).
/// The 1/|y_i| is GRPO's per-response token mean; rho is the sequence ratio (the product of the token ratios
/// GRPO clips one by one), which is the same thing for a one-action response (the bandit). With T = 1 and fresh
/// samples rho = 1 and the surrogate's gradient is A_i grad log pi(y_i) / |y_i|; with T &gt; 1 the clip stops a
/// response once its ratio has moved eps in its advantage's direction. No value head: the group mean is the baseline.
/// Log-ratios are clamped to [-20, 20] before exp. Needs C &gt;= 2.
/// <para>Truncated importance weights (is_clip = c &gt; 0; default 0 = off). The surrogate already weights each
/// response's gradient A_i grad log pi(y_i) / |y_i| by rho_i where the clip lets it through, and that weight is
/// unbounded on the side the clip leaves open (A &lt; 0, rho &gt; 1 + eps: a stale sample the policy now likes more).
/// With c &gt; 0 the unclipped branch uses min(rho_i, c) as its weight (value min(rho_i, c), gradient
/// min(rho_i, c) A_i grad log pi(y_i)), so each response's gradient is A_i grad log pi(y_i) / |y_i| times the detached
/// truncated weight min(rho_i, c), as in <see cref="Reinforce"/>, while the clip still stops a response that has moved
/// eps in its advantage's direction. Multiplying the surrogate itself by min(rho, c) would weight by rho twice.</para>
/// </summary>
public sealed class Grpo(double cliprange, double klCoef, double isClip = 0) : IPreferenceLoss
{
    /// <summary>Added to the group's std (TRL's GRPO uses 1e-4): a group of tied rewards gets A = 0, not NaN.</summary>
    public const double StdEpsilon = 1e-4;

    /// <summary>Log-ratios are clamped to +-20 before exp (float32 overflows near 88).</summary>
    public const double MaxLogRatio = 20;

    // cliprange: PPO's eps, 0.2 (PAPER.md); kl_coef: GRPO's beta, 0.04 (DeepSeekMath); 0 turns the KL term off.
    // is_clip: the truncated importance weight's cap, 0 = off.
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["cliprange"] = 0.2, ["kl_coef"] = 0.04, ["is_clip"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "grpo",
        Summary = "PPO-clipped surrogate with group-normalised advantages (r - mean) / std over the C responses; k3 KL to pi_ref; optional truncated importance weights (is_clip)",
        // Not in the paper's Table 1: on-policy, reuse through the clipped ratio, negative gradient for A < 0.
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: true, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("grpo", DefaultParameters, given);
            return new Grpo(p.Require("grpo", "cliprange", e => e > 0 && e < 1, "in (0, 1)"),
                p.Require("grpo", "kl_coef", k => k >= 0, "at least 0"),
                p.Require("grpo", "is_clip", Reinforce.IsClipValid, Reinforce.IsClipRule));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var c = batch.Rewards.shape[1];
        if (c < 2) throw new ArgumentException($"grpo needs at least 2 responses per prompt (C = {c}) to normalise within the group", nameof(batch));

        var rewards = batch.Rewards.detach();                                                        // [G, C]
        var advantages = (rewards - rewards.mean([1], keepdim: true)) / (rewards.std(1, keepdim: true) + StdEpsilon); // [G, C] A

        var logRatio = (batch.LogProbs - batch.SamplingLogProbs).clamp(-MaxLogRatio, MaxLogRatio);  // [G, C]
        var ratio = logRatio.exp();                                                                 // [G, C] rho
        var metrics = new Dictionary<string, Tensor>();
        var weight = isClip > 0                                                                     // [G, C]: min(rho, c) with rho's gradient direction
            ? Reinforce.TruncatedImportanceWeight(batch, isClip, metrics) * (logRatio - logRatio.detach()).exp()
            : ratio;
        var unclipped = weight * advantages;                                                        // [G, C]
        var clipped = ratio.clamp(1 - cliprange, 1 + cliprange) * advantages;                       // [G, C]
        var surrogate = minimum(unclipped, clipped);                                                // [G, C]
        var policyLoss = -(surrogate / batch.Lengths).mean();                                       // []

        var refMinusLogp = (batch.RefLogProbs - batch.LogProbs).clamp(-MaxLogRatio, MaxLogRatio);   // [G, C]
        var k3 = refMinusLogp.exp() - refMinusLogp - 1;                                             // [G, C] >= 0
        var loss = policyLoss + klCoef * k3.mean();                                                 // []

        metrics["rewards/mean"] = rewards.mean();
        metrics["rewards/std"] = rewards.std(1).mean();
        metrics["objective/kl"] = k3.detach().mean();
        metrics["policy/clipfrac_avg"] = (clipped.detach() < unclipped.detach()).to_type(ScalarType.Float32).mean();
        return new LossOutput(loss, metrics);
    }
}

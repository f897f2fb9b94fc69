using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// PPO (Schulman et al. 2017; PAPER.md, Losses) at the sequence level, for policies where one response is one
/// action (the categorical bandit). With rho_i = pi(y_i|x) / pi_old(y_i|x) against the policy that sampled y_i:
///   r~_i = r_i - kl_coef * (log pi_old(y_i|x) - log pi_ref(y_i|x))       (the KL penalty folded into the reward)
///   A_i  = (r~_i - mean_j r~_j) / sqrt(var_j r~_j + 1e-8)                 (whitened over the minibatch)
///   L    = -mean_i min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps) A_i),  eps = cliprange = 0.2.
/// <para>No value head and no GAE: those need a token-level model (<see cref="PpoToken"/>, "ppo-token"). The batch mean of r~ stands in for the value
/// baseline (with gamma = 1 and one action per response, GAE's advantage is r~ - V(x)); with a single response
/// in the minibatch A = 0.</para>
/// <para>Adaptive KL (Ziegler et al. 2019, the paper's init 0.2 and target 6): when adaptive_kl = 1, after each
/// batch the coefficient is multiplied by 1 + clip(KL / kl_target - 1, -0.2, 0.2) * n / kl_horizon, with KL the
/// batch mean of log pi_old - log pi_ref (nats per response) and n the batch's response count. The state lives in
/// the loss instance, one per run; with T &gt; 1 every pass over the same samples updates it again.</para>
/// Log-ratios are clamped to [-20, 20] before exp.
/// </summary>
public sealed class Ppo(double cliprange, double klCoef, bool adaptiveKl, double klTarget, double klHorizon) : IPreferenceLoss, IStatefulLoss
{
    // cliprange: eps 0.2; kl_coef: the initial coefficient 0.2 (the paper also runs 0.02); adaptive_kl: 1 = Ziegler's
    // controller; kl_target: its target KL, 6 nats; kl_horizon: its horizon, 10000 samples (TRL's default).
    private static readonly Dictionary<string, double> DefaultParameters = new()
    {
        ["cliprange"] = 0.2, ["kl_coef"] = 0.2, ["adaptive_kl"] = 1, ["kl_target"] = 6, ["kl_horizon"] = 10000,
    };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "ppo",
        Summary = "sequence-level PPO: clipped ratio to pi_old, reward minus an adaptive KL penalty to pi_ref, "
            + "a batch-mean baseline instead of a value head (no GAE); ppo-token is the token-level form",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: true, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("ppo", DefaultParameters, given);
            return new Ppo(p.Require("ppo", "cliprange", e => e > 0 && e < 1, "in (0, 1)"),
                p.Require("ppo", "kl_coef", k => k >= 0 && double.IsFinite(k), "at least 0 and finite"),
                p.Require("ppo", "adaptive_kl", a => a is 0 or 1, "0 or 1") == 1,
                p.Require("ppo", "kl_target", t => t > 0, "must be positive"),
                p.Require("ppo", "kl_horizon", h => h > 0, "must be positive"));
        },
    };

    /// <summary>The KL coefficient the next batch will use.</summary>
    public double KlCoef { get; private set; } = klCoef;

    public LossOutput Compute(GroupBatch batch)
    {
        var kl = (batch.SamplingLogProbs - batch.RefLogProbs).detach();                         // [G, C] log pi_old/pi_ref
        var shaped = batch.Rewards.detach() - KlCoef * kl;                                       // [G, C] r~
        var centred = shaped - shaped.mean();                                                    // [G, C]
        var advantages = centred / (centred.square().mean() + 1e-8).sqrt();                      // [G, C] A, whitened

        var logRatio = (batch.LogProbs - batch.SamplingLogProbs).clamp(-Grpo.MaxLogRatio, Grpo.MaxLogRatio); // [G, C]
        var ratio = logRatio.exp();                                                              // [G, C] rho
        var unclipped = ratio * advantages;                                                      // [G, C]
        var clipped = ratio.clamp(1 - cliprange, 1 + cliprange) * advantages;                    // [G, C]
        var loss = -minimum(unclipped, clipped).mean();                                          // []

        var metrics = new Dictionary<string, Tensor>
        {
            ["objective/scores"] = batch.Rewards.detach().mean(),
            ["objective/kl"] = kl.mean(),
            ["objective/kl_coef"] = tensor((float)KlCoef),
            ["policy/approxkl_avg"] = (0.5 * logRatio.detach().square()).mean(),
            ["policy/clipfrac_avg"] = (clipped.detach() < unclipped.detach()).to_type(ScalarType.Float32).mean(),
        };

        if (adaptiveKl) KlCoef = AdaptKlCoef(KlCoef, kl.mean().item<float>(), kl.numel(), klTarget, klHorizon);
        return new LossOutput(loss, metrics);
    }

    public IReadOnlyDictionary<string, double> SaveState() => new Dictionary<string, double> { ["kl_coef"] = KlCoef };

    public void LoadState(IReadOnlyDictionary<string, double> state) => KlCoef = state["kl_coef"];

    /// <summary>Ziegler et al.'s controller: coef * (1 + clip(kl / target - 1, -0.2, 0.2) * n / horizon), n responses seen.</summary>
    internal static double AdaptKlCoef(double coef, double kl, long n, double target, double horizon) =>
        coef * (1 + Math.Clamp(kl / target - 1, -0.2, 0.2) * n / horizon);
}

using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// PPO at the token level with a value head and GAE (Schulman et al. 2017; the RLHF form of Ziegler et al. 2019 as
/// in TRL; PAPER.md, Losses), for policies that score a response token by token and carry a value head (the
/// bandit's "gpt", the language model's <c>LanguageModelPolicy</c>); <see cref="Ppo"/> is the sequence-level form for one-action responses. Each response token t is
/// one action, taken in the state (x, y_&lt;t). With pi_old the policy that sampled y and V_old the value estimates
/// (below), for a response of T tokens:
/// <code>
///   r_t     = -kl_coef * (log pi_old(y_t) - log pi_ref(y_t)) + [t = T-1] r(x, y)   the KL penalty per token, the reward at the last
///   delta_t = r_t + gamma * V_old(t+1) - V_old(t),  V_old(T) = 0
///   A_t     = delta_t + gamma * lam * A_{t+1},  A_T = 0                               GAE
///   R_t     = A_t + V_old(t)                                                          the value target (before whitening)
///   A^_t     = (A_t - mean A) / sqrt(var A + 1e-8)                                     whitened over the minibatch's tokens
///   L_pi    = mean_t max(-A^_t rho_t, -A^_t clip(rho_t, 1 - eps, 1 + eps)),  rho_t = pi(y_t) / pi_old(y_t)
///   L_V     = 1/2 mean_t max((V_t - R_t)^2, (clip(V_t, V_old(t) - eps_v, V_old(t) + eps_v) - R_t)^2)
///   L       = L_pi + vf_coef * L_V
/// </code>
/// Means and the whitening run over every response token of the minibatch (the mask; var is the population
/// variance, as in <see cref="Ppo"/>). Defaults are PAPER.md's: eps = cliprange 0.2, eps_v = cliprange_value 0.2,
/// vf_coef 0.1, gamma 1, lam 0.95, kl_coef 0.2 adapted by Ziegler's controller towards kl_target 6 nats per response
/// (the KL it measures is the mean over responses of the sum over tokens of log pi_old - log pi_ref; horizon 10000
/// responses). Log-ratios are clamped to [-20, 20] before exp.
/// <para>Old values. A rollout carries its token log-probs but no value estimates, so V_old is not the sampling
/// policy's: the Learner computes it with the current model, without gradient, once per batch before the batch's
/// first gradient step, and every pass and minibatch of the batch uses those values. With B = M, T = 1 and no
/// sampling lag that model is the sampling policy; otherwise it is the policy that starts the batch's steps.</para>
/// <para>Needs <see cref="GroupBatch.Tokens"/>; the categorical bandit (one action, no value head) has none: use "ppo".</para>
/// </summary>
public sealed class PpoToken(double cliprange, double cliprangeValue, double vfCoef, double gamma, double lambda,
    double klCoef, bool adaptiveKl, double klTarget, double klHorizon) : IPreferenceLoss, IStatefulLoss
{
    // cliprange: eps 0.2; cliprange_value: eps_v 0.2; vf_coef: 0.1; gamma: 1; lam: GAE's lambda 0.95; kl_coef: the initial
    // coefficient 0.2 (the paper also runs 0.02); adaptive_kl: 1 = Ziegler's controller; kl_target: 6 nats per response;
    // kl_horizon: 10000 responses (TRL's default). All PAPER.md's PPO values.
    private static readonly Dictionary<string, double> DefaultParameters = new()
    {
        ["cliprange"] = 0.2, ["cliprange_value"] = 0.2, ["vf_coef"] = 0.1, ["gamma"] = 1, ["lam"] = 0.95,
        ["kl_coef"] = 0.2, ["adaptive_kl"] = 1, ["kl_target"] = 6, ["kl_horizon"] = 10000,
    };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "ppo-token",
        Summary = "token-level PPO (the paper's): per-token clipped ratio to pi_old, value head with clipped value loss, "
            + "GAE over the reward at the last token minus a per-token adaptive KL penalty to pi_ref; needs a token-level policy (bandit gpt, or the language model)",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: true, NegativeGradient: true),
        TokenLevel = true,
        Defaults = DefaultParameters,
        Create = given =>
        {
            const string name = "ppo-token";
            var p = MethodParameters.Resolve(name, DefaultParameters, given);
            return new PpoToken(p.Require(name, "cliprange", e => e > 0 && e < 1, "in (0, 1)"),
                p.Require(name, "cliprange_value", e => e > 0 && double.IsFinite(e), "positive and finite"),
                p.Require(name, "vf_coef", v => v >= 0 && double.IsFinite(v), "at least 0 and finite"),
                p.Require(name, "gamma", g => g >= 0 && g <= 1, "in [0, 1]"),
                p.Require(name, "lam", l => l >= 0 && l <= 1, "in [0, 1]"),
                p.Require(name, "kl_coef", k => k >= 0 && double.IsFinite(k), "at least 0 and finite"),
                p.Require(name, "adaptive_kl", a => a is 0 or 1, "0 or 1") == 1,
                p.Require(name, "kl_target", t => t > 0, "must be positive"),
                p.Require(name, "kl_horizon", h => h > 0, "must be positive"));
        },
    };

    /// <summary>Added to the variance when whitening the advantages.</summary>
    public const double WhitenEpsilon = 1e-8;

    /// <summary>The KL coefficient the next minibatch will use.</summary>
    public double KlCoef { get; private set; } = klCoef;

    public LossOutput Compute(GroupBatch batch)
    {
        var tokens = batch.Tokens ?? throw new ArgumentException(
            "ppo-token needs per-token log-probs and values (GroupBatch.Tokens): a token-level policy with a value head, "
            + "such as the bandit's gpt policy; for one-action policies use ppo", nameof(batch));
        var mask = tokens.Mask;                                                                  // [G, C, L]
        var count = mask.sum();                                                                  // [] response tokens
        var kl = (tokens.SamplingLogProbs - tokens.RefLogProbs).detach() * mask;                 // [G, C, L] log pi_old/pi_ref
        var rewards = -KlCoef * kl + batch.Rewards.detach().unsqueeze(2) * LastToken(mask);      // [G, C, L] r_t
        var oldValues = tokens.OldValues.detach() * mask;                                        // [G, C, L] V_old, 0 past the end
        var (rawAdvantages, returns) = Gae(rewards, oldValues, gamma, lambda);                   // [G, C, L] each
        var advantages = Whiten(rawAdvantages, mask);                                            // [G, C, L] A^

        var logRatio = (tokens.LogProbs - tokens.SamplingLogProbs).clamp(-Grpo.MaxLogRatio, Grpo.MaxLogRatio);   // [G, C, L]
        var ratio = logRatio.exp();                                                              // [G, C, L] rho_t
        var pgLosses = -advantages * ratio;                                                      // [G, C, L]
        var pgLossesClipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange);          // [G, C, L]
        var policyLoss = (maximum(pgLosses, pgLossesClipped) * mask).sum() / count;              // []

        var values = tokens.Values;                                                              // [G, C, L] V_t, with grad
        var clippedValues = oldValues + (values - oldValues).clamp(-cliprangeValue, cliprangeValue);   // [G, C, L]
        var vfLosses = (values - returns).square();                                              // [G, C, L]
        var vfLossesClipped = (clippedValues - returns).square();                                // [G, C, L]
        var valueLoss = 0.5 * (maximum(vfLosses, vfLossesClipped) * mask).sum() / count;         // []
        var loss = policyLoss + vfCoef * valueLoss;                                              // []

        var klPerResponse = kl.sum(2);                                                           // [G, C]
        var metrics = new Dictionary<string, Tensor>
        {
            ["objective/scores"] = batch.Rewards.detach().mean(),
            ["objective/kl"] = klPerResponse.mean(),
            ["objective/kl_coef"] = tensor((float)KlCoef),
            ["loss/policy_avg"] = policyLoss.detach(),
            ["loss/value_avg"] = valueLoss.detach(),
            ["policy/approxkl_avg"] = (0.5 * logRatio.detach().square() * mask).sum() / count,
            ["policy/clipfrac_avg"] = ((pgLossesClipped.detach() > pgLosses.detach()).to_type(ScalarType.Float32) * mask).sum() / count,
            ["val/clipfrac_avg"] = ((vfLossesClipped.detach() > vfLosses.detach()).to_type(ScalarType.Float32) * mask).sum() / count,
            ["val/mean"] = (values.detach() * mask).sum() / count,
            ["returns/mean"] = (returns * mask).sum() / count,
        };

        if (adaptiveKl) KlCoef = Ppo.AdaptKlCoef(KlCoef, klPerResponse.mean().item<float>(), klPerResponse.numel(), klTarget, klHorizon);
        return new LossOutput(loss, metrics);
    }

    /// <summary>
    /// Generalised advantage estimation (Schulman et al. 2016) along the last axis: rewards and values [..., L], with
    /// V(L) = 0 (the episode ends after the last position; zero rewards and values past a response's end carry
    /// nothing back). Returns the advantages A_t = sum_k (gamma lam)^k delta_{t+k} and the value targets
    /// R_t = A_t + V(t), [..., L] each, no gradient.
    /// </summary>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, double gamma, double lambda)
    {
        using var scope = NewDisposeScope();
        rewards = rewards.detach();
        values = values.detach();
        var length = (int)rewards.shape[^1];
        var steps = new Tensor[length];
        var next = zeros_like(rewards.select(-1, 0));                                            // [...] A_{t+1}, 0 past the end
        for (var t = length - 1; t >= 0; t--)
        {
            var nextValue = t + 1 < length ? values.select(-1, t + 1) : zeros_like(next);        // [...] V(t+1)
            var delta = rewards.select(-1, t) + gamma * nextValue - values.select(-1, t);        // [...] delta_t
            next = delta + gamma * lambda * next;                                                // [...] A_t
            steps[t] = next;
        }
        var advantages = stack(steps, -1);                                                       // [..., L]
        var returns = advantages + values;                                                       // [..., L]
        return (advantages.MoveToOuterDisposeScope(), returns.MoveToOuterDisposeScope());
    }

    /// <summary>(x - mean) / sqrt(var + 1e-8) over the masked entries (population variance), 0 where the mask is 0.</summary>
    public static Tensor Whiten(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var count = mask.sum();                                                                  // []
        var mean = (x * mask).sum() / count;                                                     // []
        var variance = ((x - mean).square() * mask).sum() / count;                               // []
        return ((x - mean) / (variance + WhitenEpsilon).sqrt() * mask).MoveToOuterDisposeScope();
    }

    /// <summary>1 at each response's last token: mask [..., L] (ones then zeros) -> [..., L].</summary>
    private static Tensor LastToken(Tensor mask)
    {
        using var scope = NewDisposeScope();
        var length = mask.shape[^1];
        var next = cat([mask.narrow(-1, 1, length - 1), zeros_like(mask.narrow(-1, 0, 1))], -1);   // [..., L] mask shifted left
        return (mask - next).MoveToOuterDisposeScope();
    }

    public IReadOnlyDictionary<string, double> SaveState() => new Dictionary<string, double> { ["kl_coef"] = KlCoef };

    public void LoadState(IReadOnlyDictionary<string, double> state) => KlCoef = state["kl_coef"];
}

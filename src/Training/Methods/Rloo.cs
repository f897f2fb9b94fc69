using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// REINFORCE with the leave-one-out baseline, RLOO (Kool et al. 2019; Ahmadian et al. 2024; PAPER.md, Losses):
/// per prompt group of C responses, b_i = (sum_j r~_j - r~_i) / (C - 1), the mean of the other C - 1 rewards, and
/// L = -mean_i clamp(r~_i - b_i, -10, 10) * log pi(y_i|x). The baseline never depends on y_i itself, so the
/// gradient stays unbiased; it needs C &gt;= 2. On-policy only.
/// <para>KL penalty (kl_coef = beta, default 0), as in <see cref="Reinforce"/>: r~ = r - beta * (log pi(y) - log pi_ref(y))
/// with the log-ratio detached. With kl_coef = 0, r~ = r.</para>
/// <para>Truncated importance weights (is_clip = c &gt; 0; default 0 = off), as in <see cref="Reinforce"/>: each term is
/// multiplied by the detached min(pi(y_i|x) / pi_old(y_i|x), c), pi_old the policy that sampled y_i.</para>
/// </summary>
public sealed class Rloo(double klCoef, double isClip = 0) : IPreferenceLoss
{
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["kl_coef"] = 0, ["is_clip"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "rloo",
        Summary = "-(r - b) log pi(y|x) with b the mean reward of the other C-1 responses to the prompt; optional KL penalty to pi_ref and truncated importance weights (is_clip)",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: false, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("rloo", DefaultParameters, given);
            return new Rloo(p.Require("rloo", "kl_coef", k => k >= 0, "at least 0"),
                p.Require("rloo", "is_clip", Reinforce.IsClipValid, Reinforce.IsClipRule));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var c = batch.Rewards.shape[1];
        if (c < 2) throw new ArgumentException($"rloo needs at least 2 responses per prompt (C = {c}): the baseline is the mean of the other C - 1", nameof(batch));

        var logRatio = (batch.LogProbs - batch.RefLogProbs).detach();                      // [G, C] log pi/pi_ref
        var shaped = batch.Rewards.detach() - klCoef * logRatio;                           // [G, C] r~
        var baseline = (shaped.sum(1, keepdim: true) - shaped) / (c - 1);                  // [G, C] b_i, leave-one-out
        var weight = (shaped - baseline).clamp(-Reinforce.WeightClip, Reinforce.WeightClip); // [G, C]
        var terms = weight * batch.LogProbs;                                               // [G, C]
        var metrics = new Dictionary<string, Tensor>
        {
            ["rewards/mean"] = batch.Rewards.detach().mean(),
            ["advantages/std"] = (weight - weight.mean()).square().mean().sqrt(),
            ["objective/kl"] = logRatio.mean(),
        };
        if (isClip > 0) terms = Reinforce.TruncatedImportanceWeight(batch, isClip, metrics) * terms;   // [G, C]
        var loss = -terms.mean();                                                          // []
        return new LossOutput(loss, metrics);
    }
}

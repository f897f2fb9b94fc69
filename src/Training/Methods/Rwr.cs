using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// Reward-weighted regression (PAPER.md, Losses): L = -mean_i w_i log pi(y_i|x) / |y_i| over every response
/// of the minibatch, with w_i = min(exp(r_i / tau), weight_clip) (the paper clips the weights at 10; tau in
/// {1, 10}). The weights are detached and always positive, so the loss only ever pulls likelihood up: a
/// weighted maximum likelihood (mode-covering), no negative gradient. The weights are not normalised over the
/// batch (the paper's and the official bandit code's form). On fresh policy samples it is online RWR; on
/// D_pref, offline RWR.
/// </summary>
public sealed class Rwr(double tau, double weightClip) : IPreferenceLoss
{
    // tau: the temperature, 1 (the paper also runs 10); weight_clip: the paper's clip of the weights at 10.
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["tau"] = 1, ["weight_clip"] = 10 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "rwr",
        Summary = "reward-weighted regression: -w log pi(y|x) / |y| on every response, w = min(exp(r / tau), weight_clip)",
        // Either data source: online (reuse allowed) or offline; the weights are positive, so no negative gradient.
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: true, SampleReuse: true, NegativeGradient: false),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("rwr", DefaultParameters, given);
            return new Rwr(p.Require("rwr", "tau", t => t > 0, "must be positive"),
                p.Require("rwr", "weight_clip", c => c > 0 && double.IsFinite(c), "must be positive and finite"));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        // Clamping the exponent at ln(weight_clip) before exp gives min(exp(r / tau), weight_clip) without overflow.
        var exponent = (batch.Rewards.detach() / tau).clamp_max(Math.Log(weightClip));  // [G, C]
        var weights = exponent.exp();                                                    // [G, C] w in (0, weight_clip]
        var loss = -(weights * batch.LogProbs / batch.Lengths).mean();                   // []
        return new LossOutput(loss, new Dictionary<string, Tensor>
        {
            ["rewards/mean"] = batch.Rewards.detach().mean(),
            ["weights/mean"] = weights.mean(),
            ["weights/clipped"] = (exponent >= Math.Log(weightClip)).to_type(ScalarType.Float32).mean(),
            ["logps/mean"] = batch.LogProbs.detach().mean(),
        });
    }
}

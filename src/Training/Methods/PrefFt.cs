using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// Pref-FT: supervised fine-tuning on the preferred response of each pair (PAPER.md, Losses):
/// L = mean over pairs (w, l) of -log pi(y_w|x) / |y_w| (token mean). No negative term.
/// It also reports DPO's implicit rewards beta * (log pi - log pi_ref) of y_w and y_l (beta is used for
/// these diagnostics only), so the contrastive methods' margins can be compared with Pref-FT's.
/// </summary>
public sealed class PrefFt(double threshold, double beta = 0.05) : IPreferenceLoss
{
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["threshold"] = 0, ["beta"] = 0.05 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "pref-ft",
        Summary = "SFT on the preferred response of each ranked pair: -log pi(y_w|x) / |y_w|",
        Axes = new MethodAxes(OnPolicySampling: false, OfflineData: true, SampleReuse: false, NegativeGradient: false),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("pref-ft", DefaultParameters, given);
            return new PrefFt(p.Require("pref-ft", "threshold", t => t >= 0, "at least 0"), p.Require("pref-ft", "beta", b => b > 0, "above 0"));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var pairs = PreferencePairs.Build(batch.Rewards, threshold);
        if (pairs.Count == 0)
            return new LossOutput(PreferencePairs.ZeroLoss(batch), new Dictionary<string, Tensor> { ["pairs"] = tensor(0f) });

        var chosen = pairs.Chosen(batch.LogProbs);                       // [P] log pi(y_w|x)
        var loss = -(chosen / pairs.Chosen(batch.Lengths)).mean();       // []
        return new LossOutput(loss, pairs.Diagnostics(batch, beta));
    }
}

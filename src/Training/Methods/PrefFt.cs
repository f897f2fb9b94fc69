using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// Pref-FT: supervised fine-tuning on the preferred response of each pair (PAPER.md, Losses):
/// L = mean over pairs (w, l) of -log pi(y_w|x) / |y_w| (token mean). No negative term.
/// </summary>
public sealed class PrefFt(double threshold) : IPreferenceLoss
{
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["threshold"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "pref-ft",
        Summary = "SFT on the preferred response of each ranked pair: -log pi(y_w|x) / |y_w|",
        Axes = new MethodAxes(OnPolicySampling: false, OfflineData: true, SampleReuse: false, NegativeGradient: false),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("pref-ft", DefaultParameters, given);
            return new PrefFt(p.Require("pref-ft", "threshold", t => t >= 0, "at least 0"));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var pairs = PreferencePairs.Build(batch.Rewards, threshold);
        if (pairs.Count == 0)
            return new LossOutput(PreferencePairs.ZeroLoss(batch), new Dictionary<string, Tensor> { ["pairs"] = tensor(0f) });

        var chosen = pairs.Chosen(batch.LogProbs);                       // [P] log pi(y_w|x)
        var loss = -(chosen / pairs.Chosen(batch.Lengths)).mean();       // []
        return new LossOutput(loss, new Dictionary<string, Tensor>
        {
            ["logps/chosen"] = chosen.detach().mean(),
            ["pairs"] = tensor((float)pairs.Count),
        });
    }
}

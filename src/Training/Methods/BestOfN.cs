using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// Best-of-N (filtered SFT; PAPER.md, Losses): per prompt keep the response with the highest reward and
/// maximise its likelihood, L = mean over groups of -log pi(y_best|x) / |y_best|. Ties go to the first
/// response. On fresh policy samples it is online Best-of-N (ReST-like); on D_pref, offline Best-of-N.
/// </summary>
public sealed class BestOfN : IPreferenceLoss
{
    private static readonly Dictionary<string, double> DefaultParameters = [];

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "best-of-n",
        Summary = "SFT on the highest-reward response of each prompt group: -log pi(y_best|x) / |y_best|",
        // Either data source: online (ReST-like, reuse allowed) or offline; never a negative gradient.
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: true, SampleReuse: true, NegativeGradient: false),
        Defaults = DefaultParameters,
        Create = given =>
        {
            MethodParameters.Resolve("best-of-n", DefaultParameters, given);
            return new BestOfN();
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var best = batch.Rewards.detach().argmax(1).unsqueeze(1);   // [G, 1]
        var chosen = batch.LogProbs.gather(1, best).squeeze(1);      // [G] log pi(y_best|x)
        var lengths = batch.Lengths.gather(1, best).squeeze(1);      // [G]
        var loss = -(chosen / lengths).mean();                       // []
        return new LossOutput(loss, new Dictionary<string, Tensor>
        {
            ["logps/chosen"] = chosen.detach().mean(),
            ["rewards/best"] = batch.Rewards.gather(1, best).mean(),
        });
    }
}

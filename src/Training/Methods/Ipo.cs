using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// IPO (Azar et al. 2023; PAPER.md, Losses) on every ranked pair of a prompt group, with DPO's margin
/// h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)):
///   L = mean over pairs of (h - 1/(2 beta))^2.
/// The square pulls h to a finite target instead of pushing it to infinity as -log sigmoid does, so IPO stays
/// bounded below (by 0) however far the rejected response is pushed down. Offline on D_pref, or on-policy
/// when the Orchestrator feeds it the policy's own samples ranked by the reward. A pair needs a reward gap above
/// threshold; the pairs used are returned in <see cref="LossOutput.Pairs"/> (rule <see cref="PreferencePairs.Rule"/>).
/// <para>The official bandit code writes (h - beta)^2 with beta = 10 the target margin itself; that is this loss
/// with beta = 0.05 (1/(2 * 0.05) = 10), so the default beta reproduces the bandit code exactly. target_margin &gt; 0
/// sets the target directly, replacing 1/(2 beta).</para>
/// </summary>
public sealed class Ipo(double beta, double targetMargin, double threshold) : IPreferenceLoss
{
    // beta: the bandit's 0.05 = the official bandit code's target margin 10 (like Dpo's default; the paper's LLM runs
    // use 0.1, i.e. target 5); target_margin: 0 = use 1/(2 beta); threshold: minimum reward gap of a pair.
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["beta"] = 0.05, ["target_margin"] = 0, ["threshold"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "ipo",
        Summary = "(h - 1/(2 beta))^2 on ranked pairs, h the chosen-minus-rejected log-ratio to pi_ref; target_margin > 0 replaces 1/(2 beta)",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: true, SampleReuse: true, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("ipo", DefaultParameters, given);
            return new Ipo(p.Require("ipo", "beta", b => b > 0, "must be positive"),
                p.Require("ipo", "target_margin", m => m >= 0 && double.IsFinite(m), "at least 0 (0 = 1/(2 beta)) and finite"),
                p.Require("ipo", "threshold", t => t >= 0, "at least 0"));
        },
    };

    /// <summary>The margin h is pulled to: target_margin when set, else 1/(2 beta).</summary>
    public double Target => targetMargin > 0 ? targetMargin : 1 / (2 * beta);

    public LossOutput Compute(GroupBatch batch)
    {
        var pairs = PreferencePairs.Build(batch.Rewards, threshold);
        if (pairs.Count == 0)
            return new LossOutput(PreferencePairs.ZeroLoss(batch), new Dictionary<string, Tensor> { ["pairs"] = tensor(0f) }) { Pairs = pairs.Used(threshold) };

        var h = pairs.Margin(batch);                                                     // [P]
        var loss = (h - Target).square().mean();                                         // []
        return new LossOutput(loss, pairs.Diagnostics(batch, beta)) { Pairs = pairs.Used(threshold) };
    }
}

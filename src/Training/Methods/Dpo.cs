using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// DPO (Rafailov et al. 2023; PAPER.md, Losses) on every ranked pair of a prompt group:
/// h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)), L = mean over pairs of
/// -log sigmoid(beta * h). Sequence-level log-probs. Offline on D_pref, or on-policy when the Orchestrator
/// feeds it the policy's own samples ranked by the reward. A pair needs a reward gap above threshold; the pairs
/// used are returned in <see cref="LossOutput.Pairs"/> (rule <see cref="PreferencePairs.Rule"/>).
/// </summary>
public sealed class Dpo(double beta, double threshold) : IPreferenceLoss
{
    // beta: the bandit's 0.05 (the paper's LLM runs use 0.1); threshold: minimum reward gap of a pair.
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["beta"] = 0.05, ["threshold"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "dpo",
        Summary = "-log sigmoid(beta * h) on ranked pairs, h the chosen-minus-rejected log-ratio to pi_ref",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: true, SampleReuse: true, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("dpo", DefaultParameters, given);
            return new Dpo(p.Require("dpo", "beta", b => b > 0, "must be positive"),
                p.Require("dpo", "threshold", t => t >= 0, "at least 0"));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var pairs = PreferencePairs.Build(batch.Rewards, threshold);
        if (pairs.Count == 0)
            return new LossOutput(PreferencePairs.ZeroLoss(batch), new Dictionary<string, Tensor> { ["pairs"] = tensor(0f) }) { Pairs = pairs.Used(threshold) };

        var h = pairs.Margin(batch);                                                     // [P]
        var loss = -nn.functional.logsigmoid(beta * h).mean();                           // []
        return new LossOutput(loss, pairs.Diagnostics(batch, beta)) { Pairs = pairs.Used(threshold) };
    }
}

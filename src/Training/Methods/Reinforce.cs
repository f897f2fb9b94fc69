using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// REINFORCE with a running-mean baseline (PAPER.md, Losses): L = -mean over samples of
/// clamp(r~ - b, -10, 10) * log pi(y|x), on-policy only.
/// <para>KL penalty (kl_coef = beta, default 0): the reward is shaped, r~ = r - beta * (log pi(y) - log pi_ref(y))
/// with the log-ratio detached, which is the score-function gradient of E_pi[r] - beta KL(pi || pi_ref) (its
/// extra constant -beta is absorbed by the baseline). With kl_coef = 0, r~ = r.</para>
/// <para>Baseline: b = 0 before the first batch, so the first batch is plain REINFORCE; after each
/// batch's loss is computed, b is updated from that batch's mean shaped reward: the first batch sets
/// b = mean(r~), later ones b = m b + (1 - m) mean(r~) with m = baseline_momentum. A batch never baselines
/// itself, and b carries no start-at-zero bias. The state lives in the loss instance, one per run.</para>
/// </summary>
public sealed class Reinforce(double momentum, double klCoef) : IPreferenceLoss, IStatefulLoss
{
    /// <summary>Weights (r~ - b) are clipped to [-10, 10] (the paper's clip).</summary>
    public const double WeightClip = 10;

    private static readonly Dictionary<string, double> DefaultParameters = new() { ["baseline_momentum"] = 0.9, ["kl_coef"] = 0 };

    public static MethodDescriptor Descriptor { get; } = new()
    {
        Name = "reinforce",
        Summary = "-(r - b) log pi(y|x) with b a running mean of the rewards; optional KL penalty to pi_ref",
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: false, SampleReuse: false, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve("reinforce", DefaultParameters, given);
            return new Reinforce(p.Require("reinforce", "baseline_momentum", m => m >= 0 && m < 1, "in [0, 1)"),
                p.Require("reinforce", "kl_coef", k => k >= 0, "at least 0"));
        },
    };

    /// <summary>The baseline the next batch will use (0 before any batch).</summary>
    public double Baseline { get; private set; }

    /// <summary>Batches seen so far.</summary>
    public int Batches { get; private set; }

    public LossOutput Compute(GroupBatch batch)
    {
        var logRatio = (batch.LogProbs - batch.RefLogProbs).detach();            // [G, C] log pi/pi_ref
        var shaped = batch.Rewards.detach() - klCoef * logRatio;                   // [G, C] r~
        var weight = (shaped - Baseline).clamp(-WeightClip, WeightClip);          // [G, C]
        var loss = -(weight * batch.LogProbs).mean();                              // []

        var metrics = new Dictionary<string, Tensor>
        {
            ["baseline"] = tensor((float)Baseline),
            ["rewards/mean"] = batch.Rewards.detach().mean(),
            ["advantages/mean"] = weight.mean(),
            ["objective/kl"] = logRatio.mean(),
        };

        var batchMean = shaped.mean().item<float>();
        Baseline = Batches == 0 ? batchMean : momentum * Baseline + (1 - momentum) * batchMean;
        Batches++;
        return new LossOutput(loss, metrics);
    }

    public IReadOnlyDictionary<string, double> SaveState() => new Dictionary<string, double> { ["baseline"] = Baseline, ["batches"] = Batches };

    public void LoadState(IReadOnlyDictionary<string, double> state)
    {
        Baseline = state["baseline"];
        Batches = (int)state["batches"];
    }
}

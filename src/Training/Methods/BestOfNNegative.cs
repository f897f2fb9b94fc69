using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// Best-of-N with a negative gradient (PAPER.md, Losses): per prompt group, pull the best response up and push the
/// worse ones down, L = mean over groups of
///   -log pi(y_best|x) / |y_best| + beta * sum_j a_j * max(log pi(y_j|x)/pi_ref(y_j|x) / |y_j|, -margin) [+ log pi_ref(y_j|x) / |y_j|]
/// where the bracketed reference term is there unless constrained = 1, and the weights a_j pick the worse responses
/// (those with a reward strictly below the best's; ties with the best are never pushed down, where the official
/// bandit code pushes down every response but the argmax):
/// <list type="bullet">
/// <item>"best-of-n-neg": a = 1 on the worst response only (the paper's -log pi(y_best) + beta log pi(y_worst));</item>
/// <item>"best-of-n-neg-avg": a = 1/k on each of the k worse responses (the average over all worse samples);</item>
/// <item>"best-of-n-neg-sum": a = 1 on each worse response (the sum over all worse samples).</item>
/// </list>
/// Both terms are token means, like <see cref="BestOfN"/> (on the bandit |y| = 1, the official code's form).
/// The (best, pushed-down) pairs are returned in <see cref="LossOutput.Pairs"/> (rule "best-vs-worst" or
/// "best-vs-each-worse", threshold 0).
/// <para>Boundedness. log pi(y_j) has no floor, so the paper's form is unbounded below: the push-down never stops
/// (for a softmax the gradient on the pushed logit stays about beta) and the loss drifts to -infinity. The official
/// "constrained" form subtracts log pi_ref(y_j), a constant: it makes the negative term 0 at pi = pi_ref but changes
/// no gradient, so it does not bound anything. What bounds the loss here is the floor: a worse response is pushed
/// down only while its per-token log-ratio to the reference is above -margin (default 10 nats per token, i.e.
/// until pi(y_j) is about e^-10 of pi_ref(y_j), where more push-down cannot move the reward). Past the floor its
/// gradient is zero and the loss is bounded below by -beta * (margin [- log pi_ref / |y|]) per pushed response.</para>
/// <para>beta (default 0.05): the official bandit code's shared --beta default, which its Best-of-N scripts do not
/// override (PAPER.md gives no value). beta must stay well below 1: at beta = 1 the "worst" variant's loss is log pi(y_worst) - log pi(y_best),
/// a pure logit difference (the softmax normaliser cancels), no longer Best-of-N's likelihood plus a correction;
/// the "sum" variant pushes with beta * (C - 1) in all.</para>
/// </summary>
public sealed class BestOfNNegative(BestOfNNegative.Worse worse, double beta, bool constrained, double margin) : IPreferenceLoss
{
    /// <summary>Which worse responses the negative term pushes down.</summary>
    public enum Worse
    {
        /// <summary>Only the lowest-reward response of the group.</summary>
        Worst,
        /// <summary>Every worse response, averaged.</summary>
        Average,
        /// <summary>Every worse response, summed.</summary>
        Sum,
    }

    // beta: weight of the negative term (the official bandit code's 0.05); constrained: 1 subtracts log pi_ref in the
    // negative term (the paper's constrained variant); margin: the floor, in nats per token below pi_ref.
    private static readonly Dictionary<string, double> DefaultParameters = new() { ["beta"] = 0.05, ["constrained"] = 0, ["margin"] = 10 };

    /// <summary>"best-of-n-neg": the worst response is pushed down.</summary>
    public static MethodDescriptor Descriptor { get; } = Describe("best-of-n-neg", Worse.Worst,
        "-log pi(y_best)/|y_best| + beta log pi(y_worst)/|y_worst|: Best-of-N plus a push-down on the worst response");

    /// <summary>"best-of-n-neg-avg": every worse response is pushed down, averaged.</summary>
    public static MethodDescriptor AverageDescriptor { get; } = Describe("best-of-n-neg-avg", Worse.Average,
        "-log pi(y_best)/|y_best| + beta mean_j log pi(y_j)/|y_j|: Best-of-N plus a push-down on every worse response, averaged");

    /// <summary>"best-of-n-neg-sum": every worse response is pushed down, summed.</summary>
    public static MethodDescriptor SumDescriptor { get; } = Describe("best-of-n-neg-sum", Worse.Sum,
        "-log pi(y_best)/|y_best| + beta sum_j log pi(y_j)/|y_j|: Best-of-N plus a push-down on every worse response, summed");

    private static MethodDescriptor Describe(string name, Worse worse, string summary) => new()
    {
        Name = name,
        Summary = summary + " (while above pi_ref - margin per token)",
        // Table 1: "either" data source, "either" reuse, negative gradient yes.
        Axes = new MethodAxes(OnPolicySampling: true, OfflineData: true, SampleReuse: true, NegativeGradient: true),
        Defaults = DefaultParameters,
        Create = given =>
        {
            var p = MethodParameters.Resolve(name, DefaultParameters, given);
            return new BestOfNNegative(worse,
                p.Require(name, "beta", b => b >= 0 && double.IsFinite(b), "at least 0 and finite"),
                p.Require(name, "constrained", c => c is 0 or 1, "0 or 1") == 1,
                p.Require(name, "margin", m => m > 0, "must be positive"));
        },
    };

    public LossOutput Compute(GroupBatch batch)
    {
        var rewards = batch.Rewards.detach();                                             // [G, C]
        var c = rewards.shape[1];
        var best = rewards.argmax(1, keepdim: true);                                      // [G, 1]
        var chosen = batch.LogProbs.gather(1, best).squeeze(1);                           // [G] log pi(y_best|x)
        var positive = -chosen / batch.Lengths.gather(1, best).squeeze(1);                // [G]

        var isWorse = (rewards < rewards.gather(1, best)).to_type(ScalarType.Float32);    // [G, C] strictly below the best
        var worseCount = isWorse.sum(1, keepdim: true);                                   // [G, 1] k
        var weights = worse switch                                                        // [G, C] a_j
        {
            Worse.Worst => nn.functional.one_hot(rewards.argmin(1), c).to_type(ScalarType.Float32) * isWorse,
            Worse.Average => isWorse / worseCount.clamp_min(1),
            _ => isWorse,
        };

        var logRatio = (batch.LogProbs - batch.RefLogProbs) / batch.Lengths;              // [G, C] per token
        var floored = logRatio.clamp_min(-margin);                                        // [G, C] no gradient past the floor
        var pushed = constrained ? floored : floored + batch.RefLogProbs / batch.Lengths;  // [G, C]
        var negative = (weights * pushed).sum(1);                                         // [G]
        var loss = (positive + beta * negative).mean();                                   // []

        var isPushed = (weights > 0).to_type(ScalarType.Float32);                         // [G, C] the responses pushed down
        var pushedCount = isPushed.sum().clamp_min(1);                                    // []
        var rejected = (isPushed * batch.LogProbs.detach()).sum() / pushedCount;
        var active = (isPushed * (logRatio.detach() > -margin).to_type(ScalarType.Float32)).sum() / pushedCount;
        return new LossOutput(loss, new Dictionary<string, Tensor>
        {
            ["logps/chosen"] = chosen.detach().mean(),
            ["logps/rejected"] = rejected,
            ["rewards/best"] = rewards.gather(1, best).mean(),
            ["negatives/active"] = active,
        })
        { Pairs = PairsOf(best, isPushed, (int)c) };
    }

    /// <summary>(group, best, pushed-down response) for every response the negative term pushes down.</summary>
    private PairsUsed PairsOf(Tensor best, Tensor isPushed, int c)
    {
        var bestOf = best.squeeze(1).data<long>().ToArray();                              // [G]
        var index = isPushed.nonzero();                                                   // [P, 2]: (g, j)
        var pushed = index.numel() == 0 ? [] : index.data<long>().ToArray();              // [2P] row-major
        var indices = Enumerable.Range(0, pushed.Length / 2)
            .Select(i => ((int)pushed[2 * i], (int)bestOf[pushed[2 * i]], (int)pushed[2 * i + 1])).ToList();
        // Pushed down means a reward strictly below the best's: a gap above 0.
        return new PairsUsed(worse == Worse.Worst ? "best-vs-worst" : "best-vs-each-worse", 0, c, indices);
    }
}

using static TorchSharp.torch;

namespace PrefTune.Training.Toy;

/// <summary>
/// Which divergence the toy descends, always named by its arguments. The paper's figure calls these
/// "forward" and "reverse" the other way round from the textbook convention, so neither word is used here.
/// </summary>
public enum KlObjective
{
    /// <summary>KL(p||q) = sum p log(p/q): mode-seeking (the textbook "reverse" KL).</summary>
    PToQ,

    /// <summary>KL(q||p) = sum q log(q/p): mode-covering (the textbook "forward" KL).</summary>
    QToP,
}

/// <summary>The toy's inputs, as an experiment file gives them.</summary>
public sealed record ModeSeekingToySpec
{
    /// <summary>The starting distribution p0; the logits start at log p0, so every entry must be positive.</summary>
    public required IReadOnlyList<double> P0 { get; init; }

    /// <summary>The target distribution q, over as many categories as <see cref="P0"/>.</summary>
    public required IReadOnlyList<double> Q { get; init; }

    /// <summary>Step size of plain gradient descent on the logits (the paper: 0.95).</summary>
    public required double LearningRate { get; init; }

    /// <summary>Number of gradient steps (the paper: 3).</summary>
    public required int Steps { get; init; }
}

/// <summary>p and the divergence being descended, before any step (<see cref="Step"/> 0) and after each step.</summary>
public sealed record ToyPoint(int Step, IReadOnlyList<double> P, double Kl);

/// <summary>One objective's descent: <see cref="ModeSeekingToySpec.Steps"/> + 1 points, the first at p0.</summary>
public sealed record ToyTrajectory(KlObjective Objective, IReadOnlyList<ToyPoint> Points)
{
    public string Name => Objective.Label();
    public IReadOnlyList<double> Final => Points[^1].P;
}

/// <summary>Both descents from the same p0 towards the same q.</summary>
public sealed record ToyResult(ModeSeekingToySpec Spec, ToyTrajectory KlPToQ, ToyTrajectory KlQToP)
{
    public IEnumerable<ToyTrajectory> Trajectories => [KlPToQ, KlQToP];
}

public static class KlObjectiveNames
{
    /// <summary>"KL(p||q)" or "KL(q||p)": the only way the objectives are shown to people.</summary>
    public static string Label(this KlObjective objective) => objective switch
    {
        KlObjective.PToQ => "KL(p||q)",
        KlObjective.QToP => "KL(q||p)",
        _ => throw new ArgumentOutOfRangeException(nameof(objective), objective, null),
    };

    /// <summary>What descending the objective does to p.</summary>
    public static string Behaviour(this KlObjective objective) =>
        objective == KlObjective.PToQ ? "mode-seeking" : "mode-covering";
}

/// <summary>
/// The mode-seeking toy (PAPER.md, "The mode-seeking toy"): a categorical p = softmax(z) with the logits z
/// initialised to log p0, moved by plain gradient descent z &lt;- z - lr * dKL/dz towards a target q, once for
/// KL(p||q) and once for KL(q||p). Autograd in float64, so the numbers are exact to rounding.
/// The logit gradients: p - q for KL(q||p), so each logit moves towards q; p * (log(p/q) - KL(p||q)) for
/// KL(p||q), so a logit rises whenever its log-ratio is below the average, even where q &lt; p (the paper's
/// category 0: mass first leaves the categories q is far lower on).
/// </summary>
public static class ModeSeekingToy
{
    public static ToyResult Run(ModeSeekingToySpec spec) =>
        new(spec, Descend(KlObjective.PToQ, spec), Descend(KlObjective.QToP, spec));

    /// <summary>Plain gradient descent on the logits for <paramref name="spec"/>.Steps steps.</summary>
    public static ToyTrajectory Descend(KlObjective objective, ModeSeekingToySpec spec)
    {
        var logits = spec.P0.Select(x => Math.Log(x)).ToArray();                 // z_0 = log p0, [K]
        var points = new List<ToyPoint>(spec.Steps + 1);
        for (var step = 0; ; step++)
        {
            var (p, kl, gradient) = Evaluate(objective, logits, spec.Q);
            points.Add(new ToyPoint(step, p, kl));
            if (step == spec.Steps)
                return new ToyTrajectory(objective, points);
            for (var k = 0; k < logits.Length; k++)
                logits[k] -= spec.LearningRate * gradient[k];                // z <- z - lr * dKL/dz
        }
    }

    /// <summary>The gradient of the objective with respect to the logits, at the point where softmax(z) = <paramref name="p"/>.</summary>
    public static double[] LogitGradient(KlObjective objective, IReadOnlyList<double> p, IReadOnlyList<double> q) =>
        Evaluate(objective, p.Select(x => Math.Log(x)).ToArray(), q).Gradient;

    /// <summary>p = softmax(z), the divergence at p, and its gradient with respect to z (by autograd).</summary>
    private static (double[] P, double Kl, double[] Gradient) Evaluate(KlObjective objective, double[] logits, IReadOnlyList<double> q)
    {
        using var _ = NewDisposeScope();
        var z = tensor(logits, dtype: ScalarType.Float64, requires_grad: true);  // [K]
        var logP = z.log_softmax(0);                                             // [K]
        var logQ = tensor(q.ToArray(), dtype: ScalarType.Float64).log();         // [K]
        var kl = objective switch
        {
            KlObjective.PToQ => (logP.exp() * (logP - logQ)).sum(),              // sum p log(p/q)
            KlObjective.QToP => (logQ.exp() * (logQ - logP)).sum(),              // sum q log(q/p)
            _ => throw new ArgumentOutOfRangeException(nameof(objective), objective, null),
        };
        kl.backward();
        var gradient = z.grad ?? throw new InvalidOperationException("no gradient reached the logits");
        return (logP.exp().data<double>().ToArray(), kl.item<double>(), gradient.data<double>().ToArray());
    }
}

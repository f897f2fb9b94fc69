using PrefTune.Training.Toy;
using TorchSharp;
using Xunit;

namespace PrefTune.Tests.Unit.Toy;

/// <summary>PAPER.md's case: p0 = [0.3, 0.3, 0.1, 0.3], q = [0.2, 0.1, 0.6, 0.1], lr 0.95, 3 steps.</summary>
internal static class PaperToy
{
    public static readonly ModeSeekingToySpec Spec = new()
    {
        P0 = [0.3, 0.3, 0.1, 0.3], Q = [0.2, 0.1, 0.6, 0.1], LearningRate = 0.95, Steps = 3,
    };

    public static readonly double[] AfterKlPToQ = [0.330, 0.221, 0.228, 0.221];
    public static readonly double[] AfterKlQToP = [0.248, 0.199, 0.354, 0.199];

    /// <summary>KL(a||b) = sum a log(a/b), by hand.</summary>
    public static double Kl(IReadOnlyList<double> a, IReadOnlyList<double> b) => a.Select((x, i) => x * Math.Log(x / b[i])).Sum();
}

public class Descending_KL_on_the_paper_toy
{
    private readonly ToyResult _result = ModeSeekingToy.Run(PaperToy.Spec);

    [Fact]
    public void KL_p_q_ends_where_the_paper_says_with_more_mass_on_category_0()
    {
        var final = _result.KlPToQ.Final;

        Assert.All(PaperToy.AfterKlPToQ.Zip(final), e => Assert.Equal(e.First, e.Second, 0.005));
        Assert.True(final[0] > PaperToy.Spec.P0[0], $"p[0] = {final[0]} should rise above p0[0] = 0.3 although q[0] = 0.2");
    }

    [Fact]
    public void KL_q_p_ends_where_the_paper_says_with_less_mass_on_category_0()
    {
        var final = _result.KlQToP.Final;

        Assert.All(PaperToy.AfterKlQToP.Zip(final), e => Assert.Equal(e.First, e.Second, 0.005));
        Assert.True(final[0] < PaperToy.Spec.P0[0]);
    }

    [Fact]
    public void Records_p0_then_one_point_per_step_each_a_distribution_with_its_divergence()
    {
        foreach (var trajectory in _result.Trajectories)
        {
            Assert.Equal([0, 1, 2, 3], trajectory.Points.Select(p => p.Step));
            Assert.Equal(PaperToy.Spec.P0, trajectory.Points[0].P, (a, b) => Math.Abs(a - b) < 1e-12);
            Assert.All(trajectory.Points, p => Assert.Equal(1, p.P.Sum(), 1e-12));
            Assert.All(trajectory.Points, p => Assert.Equal(
                trajectory.Objective == KlObjective.PToQ ? PaperToy.Kl(p.P, PaperToy.Spec.Q) : PaperToy.Kl(PaperToy.Spec.Q, p.P), p.Kl, 1e-12));
            Assert.True(trajectory.Points.Zip(trajectory.Points.Skip(1)).All(s => s.Second.Kl < s.First.Kl), "each step lowers the divergence");
        }
    }

    [Fact]
    public void Names_the_objectives_by_their_arguments()
    {
        Assert.Equal("KL(p||q)", _result.KlPToQ.Name);
        Assert.Equal("KL(q||p)", _result.KlQToP.Name);
        Assert.Equal("mode-seeking", KlObjective.PToQ.Behaviour());
        Assert.Equal("mode-covering", KlObjective.QToP.Behaviour());
    }

    [Fact]
    public void Leaves_no_live_tensors_behind()
    {
        ModeSeekingToy.Run(PaperToy.Spec);   // warm-up
        DisposeScopeManager.Statistics.Reset();
        ModeSeekingToy.Run(PaperToy.Spec);
        var afterOne = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 10; i++) ModeSeekingToy.Run(PaperToy.Spec);

        Assert.Equal(afterOne, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

public class The_logit_gradient
{
    public static TheoryData<double[], double[]> Points => new()
    {
        { [0.3, 0.3, 0.1, 0.3], [0.2, 0.1, 0.6, 0.1] },
        { [0.7, 0.2, 0.1], [0.1, 0.3, 0.6] },
        { [0.5, 0.5], [0.5, 0.5] },
    };

    /// <summary>d/dz sum q log(q/p) with p = softmax(z) is p - q.</summary>
    [Theory]
    [MemberData(nameof(Points))]
    public void Of_KL_q_p_is_p_minus_q(double[] p, double[] q)
    {
        var gradient = ModeSeekingToy.LogitGradient(KlObjective.QToP, p, q);

        Assert.Equal(p.Select((x, i) => x - q[i]), gradient, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    /// <summary>d/dz sum p log(p/q) with p = softmax(z) is p * (log(p/q) - KL(p||q)).</summary>
    [Theory]
    [MemberData(nameof(Points))]
    public void Of_KL_p_q_is_p_times_the_log_ratio_minus_its_mean(double[] p, double[] q)
    {
        var kl = PaperToy.Kl(p, q);

        var gradient = ModeSeekingToy.LogitGradient(KlObjective.PToQ, p, q);

        Assert.Equal(p.Select((x, i) => x * (Math.Log(x / q[i]) - kl)), gradient, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void At_p0_of_the_paper_raises_the_logit_of_category_0_only_under_KL_p_q()
    {
        var spec = PaperToy.Spec;

        // Gradient descent moves a logit against its gradient: negative means the logit rises.
        Assert.True(ModeSeekingToy.LogitGradient(KlObjective.PToQ, spec.P0, spec.Q)[0] < 0);
        Assert.True(ModeSeekingToy.LogitGradient(KlObjective.QToP, spec.P0, spec.Q)[0] > 0);
    }

    [Fact]
    public void Is_what_one_hand_computed_step_applies()
    {
        var spec = PaperToy.Spec with { Steps = 1 };
        var gradient = ModeSeekingToy.LogitGradient(KlObjective.QToP, spec.P0, spec.Q);
        var logits = spec.P0.Select((x, i) => Math.Log(x) - spec.LearningRate * gradient[i]).ToArray();
        var expected = logits.Select(Math.Exp).Select(e => e / logits.Sum(Math.Exp)).ToArray();

        var after = ModeSeekingToy.Descend(KlObjective.QToP, spec).Final;

        Assert.Equal(expected, after, (a, b) => Math.Abs(a - b) < 1e-12);
    }
}

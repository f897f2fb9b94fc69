using PrefTune.Messages;
using PrefTune.Training.Optimization;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>Gradient clipping, AdamW's first steps and the learning-rate schedules, each against values worked out by hand.</summary>
public class When_the_policy_optimizer_steps
{
    private static readonly OptimizerSettings NoClip = new() { MaxGradNorm = null };

    /// <summary>Gives each parameter the gradient g by backpropagating sum(p * g).</summary>
    private static void SetGradients(params (Parameter P, float[] G)[] pairs)
    {
        using var scope = NewDisposeScope();
        var loss = pairs.Select(x => (x.P * tensor(x.G).reshape(x.P.shape)).sum()).Aggregate((a, b) => a + b);
        loss.backward();
    }

    private static float[] Values(Tensor t) => t.detach().reshape(-1).data<float>().ToArray();

    [Theory]
    [InlineData(1.0, 0.6, 0.8)]      // |(3, 4)| = 5 > 1: scaled by 1/5
    [InlineData(10.0, 3.0, 4.0)]     // below the norm: unchanged
    public void Gradients_are_clipped_to_the_global_norm(double maxNorm, double gx, double gy)
    {
        using var p = new Parameter(zeros(1, 2));
        using var optimizer = new PolicyOptimizer([p], NoClip with { MaxGradNorm = maxNorm }, learningRate: 0.1, totalSteps: 10);
        optimizer.ZeroGrad();
        SetGradients((p, [3f, 4f]));
        var step = optimizer.Step();
        Assert.Equal(5.0, step.GradNorm, 5);
        var g = Values(p.grad!);
        Assert.Equal(gx, g[0], 5);
        Assert.Equal(gy, g[1], 5);
    }

    [Fact]
    public void AdamW_decays_matrices_and_takes_the_bias_corrected_first_steps()
    {
        var (lr, wd, b1, b2, eps) = (0.1, 0.01, 0.9, 0.999, 1e-8);
        double[] w0 = [1.0, -2.0], bias0 = [0.5, 3.0];
        double[] g1 = [0.5, -0.1], g2 = [0.2, 0.3];
        using var weight = new Parameter(tensor(w0.Select(x => (float)x).ToArray()).reshape(1, 2));   // 2-D: decayed
        using var bias = new Parameter(tensor(bias0.Select(x => (float)x).ToArray()));                // 1-D: not decayed
        using var optimizer = new PolicyOptimizer([weight, bias], new OptimizerSettings
        {
            WeightDecay = wd, Beta1 = b1, Beta2 = b2, Eps = eps, MaxGradNorm = null,
        }, learningRate: lr, totalSteps: 10);

        // By hand, per coordinate: p <- p - lr wd p (decoupled, matrices only), m <- b1 m + (1 - b1) g,
        // v <- b2 v + (1 - b2) g^2, p <- p - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps).
        // Step 1 reduces to p - lr wd p - lr g / (|g| + eps).
        double[] Expected(double[] p0, bool decayed, int steps)
        {
            var result = new double[p0.Length];
            for (var i = 0; i < p0.Length; i++)
            {
                var (p, m, v) = (p0[i], 0.0, 0.0);
                for (var k = 1; k <= steps; k++)
                {
                    var g = (k == 1 ? g1 : g2)[i];
                    if (decayed) p -= lr * wd * p;
                    m = b1 * m + (1 - b1) * g;
                    v = b2 * v + (1 - b2) * g * g;
                    p -= lr * (m / (1 - Math.Pow(b1, k))) / (Math.Sqrt(v / (1 - Math.Pow(b2, k))) + eps);
                }
                result[i] = p;
            }
            return result;
        }

        optimizer.ZeroGrad();
        SetGradients((weight, [.. g1.Select(x => (float)x)]), (bias, [.. g1.Select(x => (float)x)]));
        optimizer.Step();
        // The closed form of step 1, written out: 1 - 0.1 * 0.01 * 1 - 0.1 * 0.5 / 0.5 = 0.899, and -2 + 0.002 + 0.1 = -1.898.
        Assert.Equal([0.899, -1.898], Values(weight).Select(x => Math.Round(x, 5)));
        Assert.Equal([0.4, 3.1], Values(bias).Select(x => Math.Round(x, 5)));
        AssertClose(Expected(w0, decayed: true, 1), Values(weight));

        optimizer.ZeroGrad();
        SetGradients((weight, [.. g2.Select(x => (float)x)]), (bias, [.. g2.Select(x => (float)x)]));
        optimizer.Step();
        AssertClose(Expected(w0, decayed: true, 2), Values(weight));
        AssertClose(Expected(bias0, decayed: false, 2), Values(bias));
    }

    private static void AssertClose(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6, $"[{i}]: {actual[i]} vs {expected[i]}");
    }

    // Warmup 10 of 100 steps. Linear after warmup: (100 - k) / 90; cosine: 0.5 (1 + cos(pi (k - 10) / 90)).
    [Theory]
    [InlineData(ScheduleKind.Constant, new[] { 0, 0.5, 1, 1, 1, 1 })]
    [InlineData(ScheduleKind.Linear, new[] { 0, 0.5, 1, 60 / 90.0, 0.5, 0 })]
    [InlineData(ScheduleKind.Cosine, new[] { 0, 0.5, 1, 0.75, 0.5, 0 })]            // cos(pi / 3) = 0.5, cos(pi / 2) = 0
    public void Schedules_follow_transformers(ScheduleKind schedule, double[] expected)
    {
        int[] steps = [0, 5, 10, 40, 55, 100];
        for (var i = 0; i < steps.Length; i++)
            Assert.Equal(expected[i], LearningRateSchedule.Multiplier(schedule, steps[i], warmupSteps: 10, totalSteps: 100), 12);
        Assert.Equal(schedule == ScheduleKind.Constant ? 1 : 0, LearningRateSchedule.Multiplier(schedule, 150, 10, 100), 12);   // held past the end
    }

    [Fact]
    public void Each_step_uses_the_scheduled_rate()
    {
        using var p = new Parameter(zeros(2));
        // Linear, warmup 2 of 4 steps, base 0.2: multipliers 0, 1/2, 1, 1/2 (HF's LambdaLR: the first update has rate 0).
        using var optimizer = new PolicyOptimizer([p], NoClip with { Schedule = ScheduleKind.Linear, WarmupSteps = 2 }, learningRate: 0.2, totalSteps: 4);
        var rates = new List<double>();
        var before = Values(p);
        for (var k = 0; k < 4; k++)
        {
            optimizer.ZeroGrad();
            SetGradients((p, [1f, -1f]));
            rates.Add(optimizer.Step().LearningRate);
            if (k == 0) Assert.Equal(before, Values(p));                                  // rate 0 moved nothing
        }
        Assert.Equal([0, 0.1, 0.2, 0.1], rates.Select(r => Math.Round(r, 12)));
        Assert.Equal(4, optimizer.StepsTaken);
        // A restored learner at step 3 continues the schedule there: multiplier 1/2.
        using var restored = new PolicyOptimizer([p], NoClip with { Schedule = ScheduleKind.Linear, WarmupSteps = 2 }, learningRate: 0.2, totalSteps: 4, stepsTaken: 3);
        restored.ZeroGrad();
        SetGradients((p, [1f, -1f]));
        Assert.Equal(0.1, restored.Step().LearningRate, 12);
        Assert.Contains("warmup_steps", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new PolicyOptimizer([p], NoClip with { Schedule = ScheduleKind.Cosine, WarmupSteps = 5 }, learningRate: 0.1, totalSteps: 4)).Message);
    }

    [Fact]
    public void Bad_settings_name_every_bad_field()
    {
        Assert.Empty(new OptimizerSettings().Problems());
        var error = Assert.Throws<ArgumentException>(() => new OptimizerSettings { Beta1 = -1, Beta2 = 1, MaxGradNorm = 0, MicroBatch = 0 }.Validate());
        foreach (var part in new[] { "beta1 = -1", "beta2 = 1", "max_grad_norm = 0", "micro_batch = 0" })
            Assert.Contains(part, error.Message);
        Assert.DoesNotContain("weight_decay", error.Message);
        Assert.Contains("weight_decay = -0.1", new OptimizerSettings { WeightDecay = -0.1 }.Problems().Single());
        Assert.Contains("warmup_steps = -1", new OptimizerSettings { WarmupSteps = -1 }.Problems().Single());
    }
}

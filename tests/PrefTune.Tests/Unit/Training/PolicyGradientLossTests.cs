using PrefTune.Training.Methods;
using Xunit;
using static PrefTune.Tests.Unit.Training.Batches;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

public class The_rloo_loss
{
    [Fact]
    public void Baselines_each_response_with_the_mean_reward_of_the_other_responses_to_its_prompt()
    {
        using var scope = NewDisposeScope();
        // Group 0, rewards 3, 0, 0: b = 0, 1.5, 1.5, so r - b = 3, -1.5, -1.5. Group 1 ties: r - b = 0. N = 6.
        var batch = Of(new float[,] { { -1, -2, -3 }, { -1, -1, -1 } }, new float[,] { { 3, 0, 0 }, { 1, 1, 1 } });

        var output = new Rloo(klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-(3 * -1 + -1.5 * -2 + -1.5 * -3) / 6, Value(output.Loss), 6);
        Assert.Equal(-0.5, gradient[0, 0], 6);    // -(r - b) / N
        Assert.Equal(0.25, gradient[0, 1], 6);    // the negative gradient on the below-baseline responses
        Assert.Equal(0.25, gradient[0, 2], 6);
        Assert.All(new[] { gradient[1, 0], gradient[1, 1], gradient[1, 2] }, g => Assert.Equal(0, g));
    }

    [Fact]
    public void Shapes_the_reward_with_the_detached_kl_penalty()
    {
        using var scope = NewDisposeScope();
        // log pi/pi_ref = 1, 0; kl_coef 0.5: r~ = 0.5, 1; b = 1, 0.5; r~ - b = -0.5, 0.5.
        var batch = Of(new float[,] { { -1, -1 } }, new float[,] { { 1, 1 } }, refLogProbs: new float[,] { { -2, -1 } });

        var output = new Rloo(klCoef: 0.5).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0.25, gradient[0, 0], 6);
        Assert.Equal(-0.25, gradient[0, 1], 6);
        Assert.Equal(0.5, Value(output.Metrics["objective/kl"]), 6);
    }

    [Fact]
    public void Needs_two_responses_per_prompt()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => new Rloo(klCoef: 0).Compute(Of(new float[,] { { -1 }, { -2 } }, new float[,] { { 1 }, { 0 } })));
    }
}

public class The_grpo_loss
{
    [Fact]
    public void Normalises_rewards_within_each_group_and_divides_by_the_length_at_ratio_one()
    {
        using var scope = NewDisposeScope();
        // Rewards 1, 2, 3: mean 2, unbiased std 1, A = (-1, 0, 1) / (1 + 1e-4); lengths 1, 1, 2. pi_old = pi, so rho = 1.
        var batch = Of(new float[,] { { -1, -2, -3 } }, new float[,] { { 1, 2, 3 } }, lengths: new float[,] { { 1, 1, 2 } });

        var output = new Grpo(cliprange: 0.2, klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        const double a = 1 / (1 + Grpo.StdEpsilon);
        Assert.Equal(-(-a + 0 + a / 2) / 3, Value(output.Loss), 6);
        Assert.Equal(a / 3, gradient[0, 0], 6);         // below the group mean: pushed down
        Assert.Equal(0, gradient[0, 1], 6);
        Assert.Equal(-a / 2 / 3, gradient[0, 2], 6);    // above: pulled up, per token
        Assert.Equal(0, Value(output.Metrics["policy/clipfrac_avg"]), 6);
    }

    [Fact]
    public void Clips_the_ratio_only_in_the_direction_of_the_advantage()
    {
        using var scope = NewDisposeScope();
        // Each group: rewards 0, 2, so A = -a, +a with a = 1 / (sqrt 2 + 1e-4). rho = 1.5 in group 0, 0.5 in group 1.
        var batch = Of(new float[,] { { -1, -1 }, { -1, -1 } }, new float[,] { { 0, 2 }, { 0, 2 } }) with
        {
            SamplingLogProbs = tensor(new float[,] { { -1 - (float)Math.Log(1.5), -1 - (float)Math.Log(1.5) }, { -1 - (float)Math.Log(0.5), -1 - (float)Math.Log(0.5) } }),
        };

        var output = new Grpo(cliprange: 0.2, klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        var a = 1 / (Math.Sqrt(2) + Grpo.StdEpsilon);
        Assert.Equal(-(-1.5 * a + 1.2 * a - 0.8 * a + 0.5 * a) / 4, Value(output.Loss), 5);
        Assert.Equal(1.5 * a / 4, gradient[0, 0], 5);    // A < 0, rho 1.5: unclipped, still pushed down
        Assert.Equal(0, gradient[0, 1]);                 // A > 0, rho 1.5 > 1.2: clipped, no more pull
        Assert.Equal(0, gradient[1, 0]);                 // A < 0, rho 0.5 < 0.8: clipped, no more push
        Assert.Equal(-0.5 * a / 4, gradient[1, 1], 5);   // A > 0, rho 0.5: unclipped, pulled up
        Assert.Equal(0.5, Value(output.Metrics["policy/clipfrac_avg"]), 6);
    }

    [Fact]
    public void Adds_the_k3_estimate_of_the_kl_to_the_reference()
    {
        using var scope = NewDisposeScope();
        // Tied rewards: A = 0. log pi_ref - log pi = -1, 0: k3 = e^-1 - (-1) - 1 = e^-1, 0; d k3 / d logp = 1 - e^-1.
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 1, 1 } }, refLogProbs: new float[,] { { -2, -2 } });

        var output = new Grpo(cliprange: 0.2, klCoef: 0.1).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0.1 * Math.Exp(-1) / 2, Value(output.Loss), 6);
        Assert.Equal(0.1 * (1 - Math.Exp(-1)) / 2, gradient[0, 0], 6);   // positive: pulls pi back down to pi_ref
        Assert.Equal(0, gradient[0, 1], 6);
        Assert.Equal(Math.Exp(-1) / 2, Value(output.Metrics["objective/kl"]), 6);
    }
}

public class The_ppo_loss
{
    private static Ppo Fixed(double klCoef) => new(cliprange: 0.2, klCoef, adaptiveKl: false, klTarget: 6, klHorizon: 10000);

    [Fact]
    public void Whitens_the_rewards_over_the_minibatch_at_ratio_one()
    {
        using var scope = NewDisposeScope();
        // Rewards 1, 3: mean 2, std 1, A = -1, 1. rho = 1, so the gradient is -A / N.
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 1, 3 } });

        var output = Fixed(klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0, Value(output.Loss), 6);
        Assert.Equal(0.5, gradient[0, 0], 5);
        Assert.Equal(-0.5, gradient[0, 1], 5);
    }

    [Fact]
    public void Folds_the_kl_of_the_sampling_policy_to_the_reference_into_the_reward()
    {
        using var scope = NewDisposeScope();
        // log pi_old/pi_ref = 1, 0; kl_coef 0.5: r~ = 0.5, 1, so A = -1, 1 although the rewards tie.
        var batch = Of(new float[,] { { -1, -1 } }, new float[,] { { 1, 1 } }, refLogProbs: new float[,] { { -2, -1 } });

        var output = Fixed(klCoef: 0.5).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0.5, gradient[0, 0], 5);
        Assert.Equal(-0.5, gradient[0, 1], 5);
        Assert.Equal(0.5, Value(output.Metrics["objective/kl"]), 6);
        Assert.Equal(0.5, Value(output.Metrics["objective/kl_coef"]), 6);
    }

    [Fact]
    public void Clips_the_ratio_at_one_plus_epsilon_for_a_positive_advantage_only()
    {
        using var scope = NewDisposeScope();
        // Rewards 0, 2: A = -1, 1; rho = 1.5 on both.
        var batch = Of(new float[,] { { -1, -1 } }, new float[,] { { 0, 2 } }) with
        {
            SamplingLogProbs = tensor(new float[,] { { -1 - (float)Math.Log(1.5), -1 - (float)Math.Log(1.5) } }),
        };

        var output = Fixed(klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-(-1.5 + 1.2) / 2, Value(output.Loss), 5);
        Assert.Equal(0.75, gradient[0, 0], 5);   // -A rho / N: the push-down is not clipped
        Assert.Equal(0, gradient[0, 1]);         // clipped
        Assert.Equal(0.5, Value(output.Metrics["policy/clipfrac_avg"]), 6);
    }

    [Fact]
    public void Adapts_the_kl_coefficient_towards_the_target_as_ziegler_et_al()
    {
        using var scope = NewDisposeScope();
        var loss = new Ppo(cliprange: 0.2, klCoef: 0.2, adaptiveKl: true, klTarget: 6, klHorizon: 10);
        GroupBatch WithKl(float kl) => Of(new float[,] { { -1, -1 } }, new float[,] { { 0, 1 } }, refLogProbs: new float[,] { { -1 - kl, -1 - kl } });

        var first = loss.Compute(WithKl(12));      // KL / target - 1 = 1, clipped to 0.2; n = 2, horizon 10
        Assert.Equal(0.2, Value(first.Metrics["objective/kl_coef"]), 6);
        Assert.Equal(0.2 * (1 + 0.2 * 2 / 10), loss.KlCoef, 6);

        loss.Compute(WithKl(3));                   // -0.5, clipped to -0.2
        Assert.Equal(0.2 * 1.04 * (1 - 0.2 * 2 / 10), loss.KlCoef, 6);

        var before = loss.KlCoef;
        loss.Compute(WithKl(6));                   // on target: unchanged
        Assert.Equal(before, loss.KlCoef, 9);

        var fixedLoss = Fixed(klCoef: 0.2);
        fixedLoss.Compute(WithKl(12));
        Assert.Equal(0.2, fixedLoss.KlCoef);
    }
}

public class Truncated_importance_weights
{
    // log pi - log pi_old = ln 1.5 on response 0 and ln 4 on response 1: weights min(1.5, 2) = 1.5 and min(4, 2) = 2.
    private static GroupBatch Lagging(float[,] rewards) => Of(new float[,] { { -1, -1 } }, rewards) with
    {
        SamplingLogProbs = tensor(new float[,] { { -1 - (float)Math.Log(1.5), -1 - (float)Math.Log(4) } }),
    };

    [Fact]
    public void Multiply_each_reinforce_term_by_the_capped_ratio_to_the_sampling_policy()
    {
        using var scope = NewDisposeScope();
        // First batch: b = 0, so the weights are the rewards 1 and 3; N = 2.
        var batch = Lagging(new float[,] { { 1, 3 } });

        var output = new Reinforce(momentum: 0.9, klCoef: 0, isClip: 2).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-1.5 * 1 / 2, gradient[0, 0], 6);   // -w r / N with w = 1.5
        Assert.Equal(-2.0 * 3 / 2, gradient[0, 1], 6);   // w capped at 2 (the ratio is 4)
        Assert.Equal(-(1.5 * 1 * -1 + 2 * 3 * -1) / 2, Value(output.Loss), 6);
        Assert.Equal((1.5 + 2) / 2, Value(output.Metrics["is/weight_mean"]), 6);
        Assert.Equal(0.5, Value(output.Metrics["is/truncated_frac"]), 6);
    }

    [Fact]
    public void Are_off_by_default_and_leave_reinforce_unweighted()
    {
        using var scope = NewDisposeScope();
        var batch = Lagging(new float[,] { { 1, 3 } });

        var output = ((Reinforce)MethodRegistry.Create("reinforce")).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-0.5, gradient[0, 0], 6);
        Assert.Equal(-1.5, gradient[0, 1], 6);
        Assert.DoesNotContain("is/weight_mean", output.Metrics.Keys);
    }

    [Fact]
    public void Multiply_each_rloo_term_by_the_capped_ratio()
    {
        using var scope = NewDisposeScope();
        // Rewards 0, 2: leave-one-out baselines 2, 0, so r - b = -2, 2.
        var batch = Lagging(new float[,] { { 0, 2 } });

        var output = new Rloo(klCoef: 0, isClip: 2).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-1.5 * -2 / 2, gradient[0, 0], 6);
        Assert.Equal(-2.0 * 2 / 2, gradient[0, 1], 6);
    }

    [Fact]
    public void Cap_the_weight_grpos_unclipped_branch_gives_a_push_down()
    {
        using var scope = NewDisposeScope();
        // Rewards 2, 0: A = +a, -a with a = 1 / (sqrt 2 + 1e-4). Response 0: rho 1.5 > 1.2 with A > 0: clipped, no gradient
        // (as without is_clip). Response 1: rho 4 with A < 0, which the clip leaves open: without is_clip its gradient is
        // -(-a) * 4 / 2 = 2a, with is_clip = 2 the weight is capped: -(-a) * 2 / 2 = a.
        var a = 1 / (Math.Sqrt(2) + Grpo.StdEpsilon);
        var capped = Lagging(new float[,] { { 2, 0 } });
        var uncapped = Lagging(new float[,] { { 2, 0 } });

        var cappedGradient = Gradient(capped, new Grpo(cliprange: 0.2, klCoef: 0, isClip: 2).Compute(capped).Loss);
        var uncappedGradient = Gradient(uncapped, new Grpo(cliprange: 0.2, klCoef: 0).Compute(uncapped).Loss);

        Assert.Equal(0, cappedGradient[0, 0]);
        Assert.Equal(a, cappedGradient[0, 1], 5);
        Assert.Equal(2 * a, uncappedGradient[0, 1], 5);
    }

    [Fact]
    public void Leave_grpo_unchanged_where_the_ratio_is_under_the_cap()
    {
        using var scope = NewDisposeScope();
        // rho 1.5 and 4 are both under a cap of 10: the same loss and gradient as without is_clip.
        var capped = Lagging(new float[,] { { 0, 2 } });
        var plain = Lagging(new float[,] { { 0, 2 } });

        var cappedOutput = new Grpo(0.2, 0, isClip: 10).Compute(capped);
        var plainOutput = new Grpo(0.2, 0).Compute(plain);

        Assert.Equal(Value(plainOutput.Loss), Value(cappedOutput.Loss), 6);
        Assert.Equal(Gradient(plain, plainOutput.Loss), Gradient(capped, cappedOutput.Loss));
    }

    [Theory]
    [InlineData("reinforce")]
    [InlineData("rloo")]
    [InlineData("grpo")]
    public void Take_is_clip_zero_or_at_least_one(string method)
    {
        Assert.Equal(0, MethodRegistry.Get(method).Defaults["is_clip"]);
        Assert.NotNull(MethodRegistry.Create(method, new Dictionary<string, double> { ["is_clip"] = 2 }));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => MethodRegistry.Create(method, new Dictionary<string, double> { ["is_clip"] = 0.5 }));
        Assert.Contains("is_clip", error.Message);
    }
}

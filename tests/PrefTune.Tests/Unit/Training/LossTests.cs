using PrefTune.Training.Methods;
using Xunit;
using static PrefTune.Tests.Unit.Training.Batches;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

public class Building_preference_pairs
{
    [Fact]
    public void Gives_every_ordered_pair_with_a_positive_reward_gap_in_group_winner_loser_order()
    {
        using var scope = NewDisposeScope();
        var pairs = PreferencePairs.Build(tensor(new float[,] { { 3, 1, 2 }, { 0, 5, 5 } }));

        Assert.Equal(5, pairs.Count);   // group 0: (0,1) (0,2) (2,1); group 1: (1,0) (2,0), the tie 1-2 forms no pair
        Assert.Equal([0L, 0, 0, 1, 1], pairs.Group.data<long>().ToArray());
        Assert.Equal([0L, 0, 2, 1, 2], pairs.Winner.data<long>().ToArray());
        Assert.Equal([1L, 2, 1, 0, 0], pairs.Loser.data<long>().ToArray());
        Assert.Equal([3f, 3, 2, 5, 5], pairs.Chosen(tensor(new float[,] { { 3, 1, 2 }, { 0, 5, 5 } })).data<float>().ToArray());
    }

    [Fact]
    public void Gives_45_pairs_for_10_distinct_rewards()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(45, PreferencePairs.Build(arange(10, dtype: ScalarType.Float32).unsqueeze(0)).Count);
    }

    [Fact]
    public void Keeps_only_gaps_above_the_threshold()
    {
        using var scope = NewDisposeScope();
        var pairs = PreferencePairs.Build(tensor(new float[,] { { 3, 1, 2 } }), threshold: 1.5);

        Assert.Equal(1, pairs.Count);
        Assert.Equal(0L, pairs.Winner.item<long>());
        Assert.Equal(1L, pairs.Loser.item<long>());
    }

    [Fact]
    public void Rejects_a_negative_threshold()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentOutOfRangeException>(() => PreferencePairs.Build(zeros(1, 2), threshold: -1));
    }
}

public class The_dpo_loss
{
    [Fact]
    public void Is_ln2_with_gradient_minus_beta_over_2_per_pair_when_the_policy_equals_the_reference()
    {
        using var scope = NewDisposeScope();
        const double beta = 0.05;
        // Two groups of three distinct rewards: 3 pairs each, 6 in all. Response (g, j) wins w and loses l pairs,
        // so d loss / d logp = (l - w) * (beta / 2) / 6.
        var batch = Of(new float[,] { { -1, -2, -3 }, { -0.5f, -4, -2 } }, new float[,] { { 0.1f, 0.5f, 0.3f }, { 2, 1, 0 } });

        var output = new Dpo(beta, threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(Math.Log(2), Value(output.Loss), 6);
        Assert.Equal(6, Value(output.Metrics["pairs"]));
        var unit = beta / 2 / 6;
        Assert.Equal(unit * 2, gradient[0, 0], 6);    // loses 2
        Assert.Equal(-unit * 2, gradient[0, 1], 6);   // wins 2
        Assert.Equal(0, gradient[0, 2], 6);           // wins 1, loses 1
        Assert.Equal(-unit * 2, gradient[1, 0], 6);
        Assert.Equal(0, gradient[1, 1], 6);
        Assert.Equal(unit * 2, gradient[1, 2], 6);
        Assert.Equal(0, Value(output.Metrics["rewards/margins"]), 6);
        Assert.Equal(0, Value(output.Metrics["rewards/accuracies"]), 6);
    }

    [Fact]
    public void Is_minus_log_sigmoid_of_beta_h_with_trl_metrics_when_the_policy_has_moved()
    {
        using var scope = NewDisposeScope();
        // log pi/pi_ref: chosen +1, rejected -1, so h = 2; beta = 0.5 gives beta * h = 1.
        var batch = Of(new float[,] { { -1, -3 } }, new float[,] { { 1, 0 } }, refLogProbs: new float[,] { { -2, -2 } });

        var output = new Dpo(beta: 0.5, threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        var sigmoidMinus1 = 1 / (1 + Math.E);
        Assert.Equal(Math.Log(1 + Math.Exp(-1)), Value(output.Loss), 6);
        Assert.Equal(-0.5 * sigmoidMinus1, gradient[0, 0], 6);   // push the chosen up
        Assert.Equal(0.5 * sigmoidMinus1, gradient[0, 1], 6);    // the negative gradient: push the rejected down
        Assert.Equal(0.5, Value(output.Metrics["rewards/chosen"]), 6);
        Assert.Equal(-0.5, Value(output.Metrics["rewards/rejected"]), 6);
        Assert.Equal(1, Value(output.Metrics["rewards/margins"]), 6);
        Assert.Equal(1, Value(output.Metrics["rewards/accuracies"]), 6);
        Assert.Equal(-1, Value(output.Metrics["logps/chosen"]), 6);
        Assert.Equal(-3, Value(output.Metrics["logps/rejected"]), 6);
    }
}

public class The_pref_ft_loss
{
    [Fact]
    public void Has_gradient_minus_one_over_length_on_the_chosen_and_none_on_the_rejected()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -2, -1 } }, new float[,] { { 1, 0 } }, lengths: new float[,] { { 4, 1 } });

        var output = new PrefFt(threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0.5, Value(output.Loss), 6);   // -(-2) / 4
        Assert.Equal(-0.25, gradient[0, 0], 6);
        Assert.Equal(0, gradient[0, 1]);
    }

    [Fact]
    public void Averages_over_pairs_so_a_response_that_wins_twice_counts_twice()
    {
        using var scope = NewDisposeScope();
        // Rewards 3, 1, 2: pairs (0,1) (0,2) (2,1); lengths 2, 1, 4.
        var batch = Of(new float[,] { { -1, -2, -3 } }, new float[,] { { 3, 1, 2 } }, lengths: new float[,] { { 2, 1, 4 } });

        var output = new PrefFt(threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal((0.5 + 0.5 + 0.75) / 3, Value(output.Loss), 6);
        Assert.Equal(-2.0 / 2 / 3, gradient[0, 0], 6);
        Assert.Equal(0, gradient[0, 1]);
        Assert.Equal(-1.0 / 4 / 3, gradient[0, 2], 6);
        Assert.Equal(3, Value(output.Metrics["pairs"]));
    }

    [Fact]
    public void Reports_the_implicit_rewards_of_both_responses_without_pushing_the_rejected_down()
    {
        using var scope = NewDisposeScope();
        // policy log-probs -2 (chosen), -1 (rejected); reference -3 and -1: with beta 0.5 the implicit
        // rewards are 0.5 * (-2 + 3) = 0.5 and 0.5 * (-1 + 1) = 0, margin 0.5.
        var batch = Of(new float[,] { { -2, -1 } }, new float[,] { { 1, 0 } }, refLogProbs: new float[,] { { -3, -1 } });

        var output = new PrefFt(threshold: 0, beta: 0.5).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0.5, Value(output.Metrics["rewards/chosen"]), 6);
        Assert.Equal(0, Value(output.Metrics["rewards/rejected"]), 6);
        Assert.Equal(0.5, Value(output.Metrics["rewards/margins"]), 6);
        Assert.Equal(1, Value(output.Metrics["rewards/accuracies"]), 6);
        Assert.Equal(-1, Value(output.Metrics["logps/rejected"]), 6);
        Assert.Equal(0, gradient[0, 1]);
    }
}

public class The_best_of_n_loss
{
    [Fact]
    public void Trains_only_on_the_highest_reward_response_of_each_group_token_mean()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -2 }, { -3, -4 } }, new float[,] { { 0, 1 }, { 2, 1 } }, lengths: new float[,] { { 1, 2 }, { 3, 1 } });

        var output = new BestOfN().Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(1, Value(output.Loss), 6);   // mean(2/2, 3/3)
        Assert.Equal(0, gradient[0, 0]);
        Assert.Equal(-1.0 / 2 / 2, gradient[0, 1], 6);
        Assert.Equal(-1.0 / 3 / 2, gradient[1, 0], 6);
        Assert.Equal(0, gradient[1, 1]);
        Assert.Equal(1.5, Value(output.Metrics["rewards/best"]), 6);
    }
}

public class The_best_of_n_loss_with_a_negative_gradient
{
    // One group, rewards 3, 1, 2: best y0, worst y1, worse {y1, y2}. log pi/pi_ref = +0.5, 0, -0.5; lengths 1, 2, 1.
    private static GroupBatch Group() => Of(new float[,] { { -1, -2, -3 } }, new float[,] { { 3, 1, 2 } },
        refLogProbs: new float[,] { { -1.5f, -2, -2.5f } }, lengths: new float[,] { { 1, 2, 1 } });

    [Fact]
    public void Pulls_the_best_up_and_pushes_only_the_worst_down_by_beta()
    {
        using var scope = NewDisposeScope();
        // A second group of tied rewards has no worse response: plain Best-of-N on its first response.
        var batch = Of(new float[,] { { -1, -2, -3 }, { -2, -2, -2 } }, new float[,] { { 3, 1, 2 }, { 1, 1, 1 } },
            refLogProbs: new float[,] { { -1.5f, -2, -2.5f }, { -2, -2, -2 } }, lengths: new float[,] { { 1, 2, 1 }, { 1, 1, 1 } });

        var output = new BestOfNNegative(BestOfNNegative.Worse.Worst, beta: 0.5, constrained: false, margin: 10).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal((1 + 0.5 * -1 + 2) / 2, Value(output.Loss), 6);   // group 0: 1 + beta * (-2 / 2); group 1: 2
        Assert.Equal(-0.5, gradient[0, 0], 6);        // -1 / |y0| / G
        Assert.Equal(0.5 / 2 / 2, gradient[0, 1], 6); // the negative gradient: beta / |y1| / G
        Assert.Equal(0, gradient[0, 2]);              // worse, but not the worst
        Assert.Equal(-0.5, gradient[1, 0], 6);
        Assert.Equal(0, gradient[1, 1]);              // a tie with the best is never pushed down
        Assert.Equal(0, gradient[1, 2]);
        Assert.Equal(-1.5, Value(output.Metrics["logps/chosen"]), 6);
        Assert.Equal(-2, Value(output.Metrics["logps/rejected"]), 6);
        Assert.Equal(2, Value(output.Metrics["rewards/best"]), 6);
    }

    [Theory]
    [InlineData(BestOfNNegative.Worse.Average, false, 1 + 0.5 * (0.5 * -1 + 0.5 * -3), 0.5 * 0.5 / 2, 0.5 * 0.5)]
    [InlineData(BestOfNNegative.Worse.Sum, false, 1 + 0.5 * (-1 + -3), 0.5 / 2, 0.5)]
    [InlineData(BestOfNNegative.Worse.Average, true, 1 + 0.5 * (0.5 * 0 + 0.5 * -0.5), 0.5 * 0.5 / 2, 0.5 * 0.5)]
    [InlineData(BestOfNNegative.Worse.Worst, true, 1 + 0.5 * 0, 0.5 / 2, 0)]
    public void Averages_or_sums_over_the_worse_responses_and_constrained_only_shifts_the_value(
        BestOfNNegative.Worse worse, bool constrained, double loss, double gradientY1, double gradientY2)
    {
        using var scope = NewDisposeScope();
        var batch = Group();

        var output = new BestOfNNegative(worse, beta: 0.5, constrained, margin: 10).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(loss, Value(output.Loss), 6);
        Assert.Equal(-1, gradient[0, 0], 6);
        Assert.Equal(gradientY1, gradient[0, 1], 6);
        Assert.Equal(gradientY2, gradient[0, 2], 6);
        Assert.Equal(1, Value(output.Metrics["negatives/active"]), 6);
    }

    [Fact]
    public void Stops_pushing_a_response_once_it_is_margin_nats_per_token_below_the_reference()
    {
        using var scope = NewDisposeScope();
        var batch = Group();   // y2 sits 0.5 nats below pi_ref, past a 0.4 floor; y1 is level with pi_ref

        var output = new BestOfNNegative(BestOfNNegative.Worse.Sum, beta: 0.5, constrained: false, margin: 0.4).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(1 + 0.5 * ((0 + -1) + (-0.4 + -2.5)), Value(output.Loss), 6);   // y2's term is held at the floor
        Assert.Equal(0.25, gradient[0, 1], 6);
        Assert.Equal(0, gradient[0, 2]);
        Assert.Equal(0.5, Value(output.Metrics["negatives/active"]), 6);
    }

    [Fact]
    public void Is_bounded_below_with_the_floor_but_not_in_the_papers_unfloored_form()
    {
        // Gradient descent on the logits of a 3-action softmax, pi_ref uniform, rewards 3, 1, 2: 300 steps of lr 1.
        static double Train(double margin)
        {
            var logits = zeros(1, 3).requires_grad_(true);
            var loss = new BestOfNNegative(BestOfNNegative.Worse.Sum, beta: 0.5, constrained: false, margin);
            var value = 0.0;
            for (var step = 0; step < 300; step++)
            {
                using var scope = NewDisposeScope();
                var logProbs = logits.log_softmax(1);
                var output = loss.Compute(new GroupBatch
                {
                    LogProbs = logProbs, RefLogProbs = full(1, 3, -Math.Log(3)), SamplingLogProbs = logProbs.detach(),
                    Rewards = tensor(new float[,] { { 3, 1, 2 } }), Lengths = ones(1, 3),
                });
                output.Loss.backward();
                using (no_grad()) logits.sub_(logits.grad!);
                logits.grad!.zero_();
                value = Value(output.Loss);
            }
            return value;
        }

        var bound = 0.5 * 2 * (-2 - Math.Log(3));   // beta * (C - 1) * (-margin + log pi_ref), margin 2
        Assert.InRange(Train(margin: 2), bound, 0);
        Assert.True(Train(margin: 1e6) < -20);        // the paper's form keeps pushing: the loss has no floor
    }
}

public class The_rwr_loss
{
    [Fact]
    public void Weights_every_response_by_exp_r_over_tau_token_mean()
    {
        using var scope = NewDisposeScope();
        // tau 1: w = exp(0) = 1 and exp(ln 2) = 2; lengths 1 and 4.
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 0, (float)Math.Log(2) } }, lengths: new float[,] { { 1, 4 } });

        var output = new Rwr(tau: 1, weightClip: 10).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(1, Value(output.Loss), 6);        // -mean(1 * -1 / 1, 2 * -2 / 4)
        Assert.Equal(-0.5, gradient[0, 0], 6);          // -w / |y| / N
        Assert.Equal(-0.25, gradient[0, 1], 6);
        Assert.Equal(1.5, Value(output.Metrics["weights/mean"]), 6);
    }

    [Fact]
    public void Clips_the_weights_at_10_without_overflow_and_divides_the_reward_by_tau()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -1, -1 } }, new float[,] { { 5, 100_000, 5 } });

        var clippedOutput = new Rwr(tau: 1, weightClip: 10).Compute(batch);
        var clipped = Gradient(batch, clippedOutput.Loss);
        Assert.Equal(-10.0 / 3, clipped[0, 0], 5);     // exp(5) = 148 clipped to 10
        Assert.Equal(-10.0 / 3, clipped[0, 1], 5);     // exp(100000) would overflow
        Assert.Equal(1, Value(clippedOutput.Metrics["weights/clipped"]), 6);

        batch.LogProbs.grad!.zero_();
        var tempered = Gradient(batch, new Rwr(tau: 10, weightClip: 10).Compute(batch).Loss);
        Assert.Equal(-Math.Exp(0.5) / 3, tempered[0, 0], 5);
    }

    [Fact]
    public void Never_pushes_down_even_on_negative_rewards()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -1 } }, new float[,] { { -3, -50 } });

        var gradient = Gradient(batch, new Rwr(tau: 1, weightClip: 10).Compute(batch).Loss);

        Assert.Equal(-Math.Exp(-3) / 2, gradient[0, 0], 6);
        Assert.True(gradient[0, 1] < 0);
    }
}

public class The_reinforce_loss
{
    [Fact]
    public void Uses_no_baseline_on_the_first_batch_then_the_running_mean_of_earlier_batches()
    {
        using var scope = NewDisposeScope();
        var loss = new Reinforce(momentum: 0.9, klCoef: 0);

        // Batch 1, b = 0: weights = r = (1, 3); loss = -mean(1 * -1 + 3 * -2) = 3.5; d/dlogp = -w / N.
        var first = Of(new float[,] { { -1, -2 } }, new float[,] { { 1, 3 } });
        var output = loss.Compute(first);
        var gradient = Gradient(first, output.Loss);
        Assert.Equal(3.5, Value(output.Loss), 6);
        Assert.Equal(-0.5, gradient[0, 0], 6);
        Assert.Equal(-1.5, gradient[0, 1], 6);
        Assert.Equal(0, Value(output.Metrics["baseline"]));
        Assert.Equal(2, loss.Baseline, 6);   // the first batch sets b = mean(r)

        // Batch 2, b = 2: weights (2, -2): a negative gradient on the below-baseline sample.
        var second = Of(new float[,] { { -1, -1 } }, new float[,] { { 4, 0 } });
        output = loss.Compute(second);
        gradient = Gradient(second, output.Loss);
        Assert.Equal(0, Value(output.Loss), 6);
        Assert.Equal(-1, gradient[0, 0], 6);
        Assert.Equal(1, gradient[0, 1], 6);
        Assert.Equal(2, loss.Baseline, 6);   // 0.9 * 2 + 0.1 * mean(4, 0)

        // Batch 3: b = 0.9 * 2 + 0.1 * 5 afterwards.
        var third = Of(new float[,] { { -1, -1 } }, new float[,] { { 5, 5 } });
        loss.Compute(third);
        Assert.Equal(2.3, loss.Baseline, 5);
    }

    [Fact]
    public void Clips_the_weight_at_10()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1 } }, new float[,] { { 100 } });

        var output = new Reinforce(momentum: 0.9, klCoef: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-10, gradient[0, 0], 6);
    }

    [Fact]
    public void Shapes_the_reward_with_the_detached_kl_penalty()
    {
        using var scope = NewDisposeScope();
        // log pi/pi_ref = 1 on both; kl_coef 0.5: r~ = r - 0.5, and no gradient flows through the log-ratio.
        var batch = Of(new float[,] { { -1, -1 } }, new float[,] { { 1, 3 } }, refLogProbs: new float[,] { { -2, -2 } });

        var output = new Reinforce(momentum: 0.9, klCoef: 0.5).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(-0.25, gradient[0, 0], 6);   // -(1 - 0.5) / 2
        Assert.Equal(-1.25, gradient[0, 1], 6);   // -(3 - 0.5) / 2
        Assert.Equal(1, Value(output.Metrics["objective/kl"]), 6);
    }
}

public class The_ipo_loss
{
    [Fact]
    public void Is_the_squared_distance_of_h_to_one_over_two_beta_when_the_policy_equals_the_reference()
    {
        using var scope = NewDisposeScope();
        // h = 0, beta = 0.5: target 1, loss (0 - 1)^2 = 1, d loss / dh = -2.
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 1, 0 } });

        var output = new Ipo(beta: 0.5, targetMargin: 0, threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(1, Value(output.Loss), 6);
        Assert.Equal(-2, gradient[0, 0], 6);   // pull the chosen up
        Assert.Equal(2, gradient[0, 1], 6);    // the negative gradient on the rejected
        Assert.Equal(1, Value(output.Metrics["pairs"]));
    }

    [Fact]
    public void Pulls_h_back_down_once_it_overshoots_the_target_unlike_dpo()
    {
        using var scope = NewDisposeScope();
        // log pi/pi_ref: chosen +1, rejected -1, so h = 2 > target 1: loss 1, d loss / dh = +2.
        var batch = Of(new float[,] { { -1, -3 } }, new float[,] { { 1, 0 } }, refLogProbs: new float[,] { { -2, -2 } });

        var output = new Ipo(beta: 0.5, targetMargin: 0, threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(1, Value(output.Loss), 6);
        Assert.Equal(2, gradient[0, 0], 6);
        Assert.Equal(-2, gradient[0, 1], 6);
        Assert.Equal(0.5, Value(output.Metrics["rewards/chosen"]), 6);
        Assert.Equal(-0.5, Value(output.Metrics["rewards/rejected"]), 6);
        Assert.Equal(1, Value(output.Metrics["rewards/margins"]), 6);
        Assert.Equal(1, Value(output.Metrics["rewards/accuracies"]), 6);
    }

    [Fact]
    public void Takes_target_margin_over_one_over_two_beta_and_the_default_is_the_bandit_codes_10()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 1, 0 } });

        var output = new Ipo(beta: 0.5, targetMargin: 3, threshold: 0).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(9, Value(output.Loss), 6);
        Assert.Equal(-6, gradient[0, 0], 6);
        Assert.Equal(10, ((Ipo)MethodRegistry.Create("ipo")).Target, 9);   // (h - beta)^2 with beta = 10 in the bandit code
    }
}

public class A_pair_method_on_a_minibatch_of_ties
{
    [Theory]
    [InlineData("pref-ft")]
    [InlineData("dpo")]
    [InlineData("ipo")]
    public void Gives_a_zero_loss_connected_to_the_graph_and_no_pairs(string method)
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -2, -3 } }, new float[,] { { 1, 1, 1 } });

        var output = MethodRegistry.Create(method).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        Assert.Equal(0, Value(output.Loss));
        Assert.Equal(0, Value(output.Metrics["pairs"]));
        Assert.All(new[] { gradient[0, 0], gradient[0, 1], gradient[0, 2] }, g => Assert.Equal(0, g));
    }
}

public class The_pairs_a_pair_loss_reports
{
    [Fact]
    public void Are_the_dpo_pairs_above_the_threshold_and_no_others()
    {
        using var scope = NewDisposeScope();
        const double beta = 0.05;
        // Rewards 0.5, 0.45, 0.1 with threshold 0.1: (0, 2) gap 0.4 and (1, 2) gap 0.35; (0, 1) gap 0.05 is dropped.
        // At pi = pi_ref each pair's gradient is -+beta/2 / P: responses 0 and 1 win one pair each, 2 loses two.
        var batch = Of(new float[,] { { -1, -2, -3 } }, new float[,] { { 0.5f, 0.45f, 0.1f } });

        var output = new Dpo(beta, threshold: 0.1).Compute(batch);
        var gradient = Gradient(batch, output.Loss);

        var pairs = output.Pairs ?? throw new InvalidOperationException("dpo reported no pairs");
        Assert.Equal(("ranked-pairs", 0.1, 3), (pairs.Rule, pairs.Threshold, pairs.Candidates));
        Assert.Equal([(0, 0, 2), (0, 1, 2)], pairs.Indices);
        Assert.Equal(2, Value(output.Metrics["pairs"]));
        Assert.Equal(-beta / 2 / 2, gradient[0, 0], 6);
        Assert.Equal(-beta / 2 / 2, gradient[0, 1], 6);   // the dropped pair would have pushed response 1 down
        Assert.Equal(beta / 2, gradient[0, 2], 6);
    }

    [Fact]
    public void Are_empty_when_no_gap_passes_the_threshold()
    {
        using var scope = NewDisposeScope();
        var output = new Ipo(beta: 0.05, targetMargin: 0, threshold: 0.5).Compute(Of(new float[,] { { -1, -2 } }, new float[,] { { 0.3f, 0.1f } }));

        Assert.Empty(output.Pairs!.Indices);
        Assert.Equal(0.5, output.Pairs.Threshold);
    }

    [Fact]
    public void Are_best_against_worst_for_best_of_n_neg_and_best_against_each_worse_for_its_average()
    {
        using var scope = NewDisposeScope();
        // Group 0: best 1 (reward 3), worst 2 (reward 0), response 0 (reward 1) is worse too. Group 1 ties: no pair.
        var batch = Of(new float[,] { { -1, -1, -1 }, { -1, -1, -1 } }, new float[,] { { 1, 3, 0 }, { 2, 2, 2 } });

        var worst = MethodRegistry.Create("best-of-n-neg").Compute(batch).Pairs!;
        var average = MethodRegistry.Create("best-of-n-neg-avg").Compute(batch).Pairs!;

        Assert.Equal(("best-vs-worst", 0.0, 3), (worst.Rule, worst.Threshold, worst.Candidates));
        Assert.Equal([(0, 1, 2)], worst.Indices);
        Assert.Equal("best-vs-each-worse", average.Rule);
        Assert.Equal([(0, 1, 0), (0, 1, 2)], average.Indices);
    }

    [Fact]
    public void Are_absent_for_methods_that_form_no_pairs()
    {
        using var scope = NewDisposeScope();
        var batch = Of(new float[,] { { -1, -2 } }, new float[,] { { 0, 1 } });

        Assert.Null(MethodRegistry.Create("reinforce").Compute(batch).Pairs);
        Assert.Null(MethodRegistry.Create("best-of-n").Compute(batch).Pairs);
    }
}

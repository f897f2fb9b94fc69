using PrefTune.Training.Methods;
using Xunit;
using static PrefTune.Tests.Unit.Training.Batches;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

/// <summary>Hand-made [G, C, L] token-level minibatches. Token LogProbs and Values are leaves with grad.</summary>
internal static class TokenBatches
{
    /// <summary>
    /// Sampling log-probs default to the policy's (rho = 1), the reference's too (KL 0), values and old values to 0,
    /// the mask to all ones. The sequence-level tensors are the masked sums.
    /// </summary>
    public static GroupBatch Of(float[,,] logProbs, float[,] rewards, float[,,]? sampling = null, float[,,]? reference = null,
        float[,,]? values = null, float[,,]? oldValues = null, float[,,]? mask = null)
    {
        var tokens = new TokenBatch
        {
            LogProbs = tensor(logProbs).requires_grad_(true),
            RefLogProbs = tensor(reference ?? logProbs),
            SamplingLogProbs = tensor(sampling ?? logProbs),
            Values = (values is null ? zeros_like(tensor(logProbs)) : tensor(values)).requires_grad_(true),
            OldValues = oldValues is null ? zeros_like(tensor(logProbs)) : tensor(oldValues),
            Mask = mask is null ? ones_like(tensor(logProbs)) : tensor(mask),
        };
        return new GroupBatch
        {
            LogProbs = (tokens.LogProbs * tokens.Mask).sum(2),
            RefLogProbs = (tokens.RefLogProbs * tokens.Mask).sum(2),
            SamplingLogProbs = (tokens.SamplingLogProbs * tokens.Mask).sum(2),
            Rewards = tensor(rewards),
            Lengths = tokens.Mask.sum(2),
            Tokens = tokens,
        };
    }

    /// <summary>d loss / d t for a [G, C, L] leaf, flattened row-major.</summary>
    public static float[] Gradient(Tensor leaf) =>
        (leaf.grad ?? throw new InvalidOperationException("no gradient reached the tensor")).data<float>().ToArray();
}

public class Generalised_advantage_estimation
{
    [Fact]
    public void Matches_a_three_token_sequence_worked_by_hand()
    {
        using var scope = NewDisposeScope();
        // gamma 0.9, lam 0.5 (gamma lam = 0.45); r = 0.1, -0.2, 1.0; V = 0.5, 0.3, 0.8; V(3) = 0.
        //   t = 2: delta = 1.0 + 0.9 * 0   - 0.8 = 0.2;   A = 0.2
        //   t = 1: delta = -0.2 + 0.9 * 0.8 - 0.3 = 0.22; A = 0.22 + 0.45 * 0.2 = 0.31
        //   t = 0: delta = 0.1 + 0.9 * 0.3 - 0.5 = -0.13; A = -0.13 + 0.45 * 0.31 = 0.0095
        // Second row, a 2-token response padded to 3 (reward and value 0 past the end): r = 0, 1; V = 0.4, 0.6.
        //   t = 2: A = 0;  t = 1: delta = 1 - 0.6 = 0.4, A = 0.4;  t = 0: delta = 0.9 * 0.6 - 0.4 = 0.14, A = 0.14 + 0.45 * 0.4 = 0.32
        var rewards = tensor(new float[,] { { 0.1f, -0.2f, 1.0f }, { 0, 1, 0 } });
        var values = tensor(new float[,] { { 0.5f, 0.3f, 0.8f }, { 0.4f, 0.6f, 0 } });

        var (advantages, returns) = PpoToken.Gae(rewards, values, gamma: 0.9, lambda: 0.5);

        AssertClose([0.0095, 0.31, 0.2, 0.32, 0.4, 0], advantages.data<float>().ToArray());
        AssertClose([0.5095, 0.61, 1.0, 0.72, 1.0, 0], returns.data<float>().ToArray());   // A + V
    }

    [Fact]
    public void Gives_the_reward_to_go_minus_the_value_with_gamma_and_lambda_one()
    {
        using var scope = NewDisposeScope();
        var (advantages, returns) = PpoToken.Gae(tensor(new float[] { 0.1f, -0.2f, 1.0f }), tensor(new float[] { 0.5f, 0.3f, 0.8f }), 1, 1);

        AssertClose([0.9 - 0.5, 0.8 - 0.3, 1.0 - 0.8], advantages.data<float>().ToArray());
        AssertClose([0.9, 0.8, 1.0], returns.data<float>().ToArray());
    }

    [Fact]
    public void Whitens_over_the_masked_tokens_only()
    {
        using var scope = NewDisposeScope();
        // Masked entries 1, 3 (the 100 is padding): mean 2, population variance 1.
        var whitened = PpoToken.Whiten(tensor(new float[] { 1, 3, 100 }), tensor(new float[] { 1, 1, 0 }));

        AssertClose([-1, 1, 0], whitened.data<float>().ToArray());
    }

    internal static void AssertClose(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-6);
    }
}

public class The_token_level_ppo_loss
{
    private static PpoToken Fixed(double klCoef = 0, double vfCoef = 0.1, double gamma = 1, double lambda = 1) =>
        new(cliprange: 0.2, cliprangeValue: 0.2, vfCoef, gamma, lambda, klCoef, adaptiveKl: false, klTarget: 6, klHorizon: 10000);

    [Fact]
    public void Pushes_each_token_by_its_whitened_advantage_and_clips_the_ratio_in_the_advantages_direction_only()
    {
        using var scope = NewDisposeScope();
        // One prompt, two 2-token responses, rewards 1 and 0, V_old = 0, gamma = lam = 1: A = (1, 1), (0, 0) per token;
        // whitened over the 4 tokens (mean 0.5, variance 0.25): A^ = (1, 1), (-1, -1). Ratios to pi_old:
        //   (0, 0): rho 1.5, A^ +1: past 1 + eps in A's direction, clipped: no gradient
        //   (0, 1): rho 1,   A^ +1: gradient -A^ rho / 4 = -0.25 (pulled up)
        //   (1, 0): rho 1.5, A^ -1: the clip does not stop a push-down: gradient -A^ rho / 4 = +0.375
        //   (1, 1): rho 0.5, A^ -1: past 1 - eps in A's direction, clipped: no gradient
        var ln = (float)Math.Log(1.5);
        var batch = TokenBatches.Of(new float[,,] { { { -1, -1 }, { -1, -1 } } }, new float[,] { { 1, 0 } },
            sampling: new float[,,] { { { -1 - ln, -1 }, { -1 - ln, -1 + (float)Math.Log(2) } } });

        var output = Fixed().Compute(batch);
        output.Loss.backward();

        Generalised_advantage_estimation.AssertClose([0, -0.25, 0.375, 0], TokenBatches.Gradient(batch.Tokens!.LogProbs));
        // L_pi = mean(max(-A^ rho, -A^ clip(rho))) = (-1.2 - 1 + 1.5 + 0.8) / 4; L_V = 1/2 mean((0 - R)^2) with R = 1, 1, 0, 0.
        Assert.Equal(0.025, Value(output.Metrics["loss/policy_avg"]), 6);
        Assert.Equal(0.25, Value(output.Metrics["loss/value_avg"]), 6);
        Assert.Equal(0.025 + 0.1 * 0.25, Value(output.Loss), 6);
        Assert.Equal(0.5, Value(output.Metrics["policy/clipfrac_avg"]), 6);
    }

    [Fact]
    public void Clips_the_value_loss_around_the_old_values_keeping_the_larger_error()
    {
        using var scope = NewDisposeScope();
        // One 3-token response, reward 1, no KL, gamma = lam = 1: R_t = 1 for every t. eps_v = 0.2.
        //   t = 0: V_old 0.5, V 0.9 -> clipped 0.7: errors 0.01 vs 0.09, the clipped one is larger: no gradient
        //   t = 1: V_old 0.5, V 0.2 -> clipped 0.3: errors 0.64 vs 0.49, the unclipped one: gradient (0.2 - 1) / 3
        //   t = 2: V_old 0.2, V 0.1 -> inside the clip: 0.81 both, gradient (0.1 - 1) / 3
        // L_V = 1/2 (0.09 + 0.64 + 0.81) / 3; at rho = 1 the whitened advantages average to 0, so L_pi = 0.
        var batch = TokenBatches.Of(new float[,,] { { { -1, -1, -1 } } }, new float[,] { { 1 } },
            values: new float[,,] { { { 0.9f, 0.2f, 0.1f } } }, oldValues: new float[,,] { { { 0.5f, 0.5f, 0.2f } } });

        var output = Fixed(vfCoef: 1).Compute(batch);
        output.Loss.backward();

        Assert.Equal(0.5 * 1.54 / 3, Value(output.Metrics["loss/value_avg"]), 1e-6);
        Assert.Equal(0, Value(output.Metrics["loss/policy_avg"]), 1e-6);
        Assert.Equal(0.5 * 1.54 / 3, Value(output.Loss), 1e-6);
        Generalised_advantage_estimation.AssertClose([0, -0.8 / 3, -0.9 / 3], TokenBatches.Gradient(batch.Tokens!.Values));
        Assert.Equal(1.0 / 3, Value(output.Metrics["val/clipfrac_avg"]), 6);
    }

    [Fact]
    public void Puts_the_reward_on_the_last_token_and_the_kl_penalty_on_every_token()
    {
        using var scope = NewDisposeScope();
        // log pi_old - log pi_ref = 0.2, 0.4; kl_coef 0.5: r = -0.1, -0.2 + 1 = 0.8; V_old = 0, gamma = lam = 1:
        // R = reward-to-go = 0.7, 0.8. A second response of 1 token (padded): log-ratio 0.6, reward 0: r = -0.3, R = -0.3.
        var batch = TokenBatches.Of(new float[,,] { { { -1, -1 }, { -1, 0 } } }, new float[,] { { 1, 0 } },
            reference: new float[,,] { { { -1.2f, -1.4f }, { -1.6f, 0 } } }, mask: new float[,,] { { { 1, 1 }, { 1, 0 } } });

        var output = Fixed(klCoef: 0.5).Compute(batch);

        Assert.Equal((0.7 + 0.8 - 0.3) / 3, Value(output.Metrics["returns/mean"]), 6);
        Assert.Equal((0.6 + 0.6) / 2, Value(output.Metrics["objective/kl"]), 6);   // per response: the sum over its tokens
        Assert.Equal(0.5, Value(output.Metrics["objective/kl_coef"]), 6);
    }

    [Fact]
    public void Adapts_the_kl_coefficient_per_response_as_ppo_does()
    {
        using var scope = NewDisposeScope();
        var loss = new PpoToken(0.2, 0.2, 0.1, 1, 0.95, klCoef: 0.2, adaptiveKl: true, klTarget: 6, klHorizon: 10);
        // Two 3-token responses with log pi_old - log pi_ref = 4 per token: KL 12 per response, 12 / 6 - 1 = 1, clipped to 0.2; n = 2.
        var batch = TokenBatches.Of(new float[,,] { { { -1, -1, -1 }, { -1, -1, -1 } } }, new float[,] { { 0, 1 } },
            reference: new float[,,] { { { -5, -5, -5 }, { -5, -5, -5 } } });

        loss.Compute(batch);

        Assert.Equal(0.2 * (1 + 0.2 * 2 / 10), loss.KlCoef, 6);
    }

    [Fact]
    public void Names_the_policy_it_needs_when_the_batch_has_no_tokens()
    {
        using var scope = NewDisposeScope();
        var error = Assert.Throws<ArgumentException>(() => Fixed().Compute(Of(new float[,] { { -1, -2 } }, new float[,] { { 0, 1 } })));

        Assert.Contains("gpt", error.Message);
    }

    [Fact]
    public void Moves_up_the_probability_of_the_token_with_the_high_advantage_in_one_step_on_the_tiny_gpt()
    {
        var task = Bandits.SmallGpt();
        using var policy = task.CreatePolicy(1);
        using var reference = task.CreatePolicy(1);
        reference.requires_grad_(false);
        using var optimizer = optim.Adam(policy.parameters(), 0.01);
        var loss = MethodRegistry.Create("ppo-token");
        var rollouts = task.Generate(policy, task.PromptPool(1), 4, 1.0, seed: 3, policyVersion: 0, Guid.Empty);
        using var scope = NewDisposeScope();
        // Rewards 1 for the first response of each prompt, 0 for the others: its tokens get the high advantage.
        var batch = Bandits.Minibatch(task, policy, reference, c: 4, seed: 3);
        batch = batch with { Rewards = tensor(new float[,] { { 1, 0, 0, 0 }, { 1, 0, 0, 0 } }) };
        var before = task.SequenceLogProbs(policy, rollouts).detach();                    // [8]

        optimizer.zero_grad();
        loss.Compute(batch).Loss.backward();
        optimizer.step();

        var after = task.SequenceLogProbs(policy, rollouts).detach();                     // [8]
        var change = (after - before).data<float>().ToArray();
        Assert.True(change[0] > 0 && change[4] > 0, $"the rewarded responses' log-probs should rise: {string.Join(", ", change)}");
        Assert.True(change[0] > change[1..4].Max() && change[4] > change[5..8].Max(), $"more than the others': {string.Join(", ", change)}");
    }
}

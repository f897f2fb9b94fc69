using PrefTune.Messages;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks.Bandit;
using Xunit;
using static TorchSharp.torch;
using PrefTune.Training.Tasks;

namespace PrefTune.Tests.Unit.Training;

public class The_bandit_data_distribution
{
    private readonly BanditTask _task = Bandits.Task();

    [Fact]
    public void Sums_to_one_with_the_papers_edge_bins()
    {
        var p = _task.DataDistribution;

        Assert.Equal(100, p.Length);
        Assert.Equal(1, p.Sum(), 12);
        Assert.Equal(0.079, p[0], 0.005);
        Assert.Equal(0.042, p[99], 0.005);
        Assert.InRange(Array.IndexOf(p, p[1..99].Max()), 14, 17);   // the interior mode, near bin 15
        Assert.All(p[65..76], q => Assert.Equal(0.002, q, 0.0005));
    }

    [Fact]
    public void Has_entropy_about_4_12_nats()
    {
        var entropy = -_task.DataDistribution.Sum(q => q * Math.Log(q));

        Assert.Equal(4.12, entropy, 0.05);
    }

    [Theory]
    [InlineData(70, 0.039)]
    [InlineData(20, 0.377)]
    public void Gives_the_papers_expected_gold_reward(double center, double expected)
    {
        Assert.Equal(expected, Bandits.Task(center).DataExpectedGoldReward, 0.005);
    }
}

public class The_bandit_gold_reward
{
    [Fact]
    public void Is_a_gaussian_bump_around_the_centre_of_width_w()
    {
        var task = Bandits.Task(center: 70);
        Rollout At(int action) => new()
        {
            SampleId = Guid.Empty, PromptId = "p0", Group = 0, PromptTokens = [0], ResponseTokens = [action], TokenLogProbs = [0], PolicyVersion = 0,
        };

        Assert.Equal(1, task.GoldReward(At(70)));
        Assert.Equal(Math.Exp(-1), task.GoldReward(At(80)), 12);
        Assert.Equal(Math.Exp(-4), task.GoldReward(At(50)), 12);
        Assert.Throws<ArgumentException>(() => task.GoldReward(At(100)));
    }
}

public class Creating_a_task
{
    [Fact]
    public void Builds_the_bandit_for_kind_bandit()
    {
        Assert.IsType<BanditTask>(PreferenceTasks.Create(new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() }));
    }

    [Fact]
    public void Names_the_field_for_an_unknown_kind()
    {
        var error = Assert.Throws<ArgumentException>(() => PreferenceTasks.Create(new TaskSpec { Kind = "chess" }));

        Assert.Contains("task.kind", error.Message);
        Assert.Contains("bandit", error.Message);
    }

    [Fact]
    public void Names_the_field_for_an_unknown_policy()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            PreferenceTasks.Create(new TaskSpec { Kind = "bandit", Bandit = new BanditSpec { Policy = "lstm" } }));

        Assert.Contains("task.bandit.policy", error.Message);
        Assert.Contains("categorical, gpt", error.Message);
    }

    [Fact]
    public void Gives_prompts_p0_to_pK_with_one_token_each()
    {
        var prompts = Bandits.Task(prompts: 3).PromptPool(seed: 5);

        Assert.Equal(["p0", "p1", "p2"], prompts.Select(p => p.PromptId));
        Assert.Equal([[0], [1], [2]], prompts.Select(p => p.Tokens));
    }
}

public class A_bandit_policy
{
    private readonly BanditTask _task = Bandits.Task();

    [Fact]
    public void Is_built_deterministically_from_the_seed()
    {
        using var a = _task.CreatePolicy(3);
        using var b = _task.CreatePolicy(3);
        using var c = _task.CreatePolicy(4);

        Assert.Equal(a.SaveWeights(), b.SaveWeights());
        Assert.NotEqual(a.SaveWeights(), c.SaveWeights());
    }

    [Fact]
    public void Carries_the_prompt_contexts_in_its_checkpoint_and_reloads_bit_identically()
    {
        using var original = _task.CreatePolicy(3);
        using var other = _task.CreatePolicy(99);   // other weights and other contexts until loaded
        var weights = original.SaveWeights();

        other.LoadWeights(weights);

        Assert.Contains("contexts", original.state_dict().Keys);
        Assert.Equal(weights, other.SaveWeights());
        using var scope = NewDisposeScope();
        var expected = _task.ActionProbabilities(original).data<float>().ToArray();
        var actual = _task.ActionProbabilities(other).data<float>().ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Scores_rollouts_with_log_softmax_of_its_logits()
    {
        using var policy = _task.CreatePolicy(1);
        var rollouts = _task.Generate(policy, _task.PromptPool(1), 3, 1.0, seed: 11, policyVersion: 0, Guid.NewGuid());
        using var scope = NewDisposeScope();

        var logProbs = _task.SequenceLogProbs(policy, rollouts).data<float>().ToArray();   // [N]

        var model = (CategoricalPolicy)policy;
        for (var i = 0; i < rollouts.Count; i++)
        {
            var logits = model.forward(tensor(new long[] { rollouts[i].PromptTokens[0] })).data<float>().ToArray();
            var max = logits.Max();
            var logZ = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
            Assert.Equal(logits[rollouts[i].ResponseTokens[0]] - logZ, logProbs[i], 5);
            Assert.Equal(rollouts[i].TokenLogProbs[0], logProbs[i], 5);   // the sampler's log-prob, at temperature 1
        }
    }

    [Fact]
    public void Passes_the_gradient_through_its_sequence_log_probs()
    {
        using var policy = _task.CreatePolicy(1);
        var rollouts = _task.Generate(policy, _task.PromptPool(1), 2, 1.0, seed: 1, policyVersion: 0, Guid.NewGuid());
        using var scope = NewDisposeScope();

        var logProbs = _task.SequenceLogProbs(policy, rollouts);

        Assert.True(logProbs.requires_grad);
        Assert.Equal([rollouts.Count], logProbs.shape);
    }
}

public class Generating_bandit_rollouts
{
    private readonly BanditTask _task = Bandits.Task();

    private static int[] Actions(IEnumerable<Rollout> rollouts) => rollouts.Select(r => r.ResponseTokens[0]).ToArray();

    [Fact]
    public void Gives_the_same_rollouts_for_the_same_seed_and_weights()
    {
        using var policy = _task.CreatePolicy(1);
        var batch = Guid.NewGuid();

        var first = _task.Generate(policy, _task.PromptPool(1), 10, 1.0, seed: 42, policyVersion: 3, batch);
        var second = _task.Generate(policy, _task.PromptPool(1), 10, 1.0, seed: 42, policyVersion: 3, batch);

        Assert.Equal(Actions(first), Actions(second));
        Assert.Equal(first.Select(r => r.SampleId), second.Select(r => r.SampleId));
        Assert.Equal(first.Select(r => r.TokenLogProbs[0]), second.Select(r => r.TokenLogProbs[0]));
    }

    [Fact]
    public void Gives_different_rollouts_for_a_different_seed()
    {
        using var policy = _task.CreatePolicy(1);

        var first = _task.Generate(policy, _task.PromptPool(1), 10, 1.0, seed: 42, policyVersion: 0, Guid.NewGuid());
        var second = _task.Generate(policy, _task.PromptPool(1), 10, 1.0, seed: 43, policyVersion: 0, Guid.NewGuid());

        Assert.NotEqual(Actions(first), Actions(second));
    }

    [Fact]
    public void Orders_responses_group_major_with_ids_from_the_batch_and_index()
    {
        using var policy = _task.CreatePolicy(1);
        var prompts = _task.PromptPool(1).Take(3).Reverse().ToList();   // p2, p1, p0
        var batch = Guid.NewGuid();

        var rollouts = _task.Generate(policy, prompts, 4, 1.0, seed: 1, policyVersion: 7, batch);

        Assert.Equal(12, rollouts.Count);
        Assert.Equal([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], rollouts.Select(r => r.Group));
        Assert.Equal("p2", rollouts[0].PromptId);
        Assert.Equal([2], rollouts[0].PromptTokens);
        Assert.Equal("p0", rollouts[11].PromptId);
        Assert.All(rollouts, r => Assert.Equal(7, r.PolicyVersion));
        Assert.Equal(SampleIds.Of(batch, 5), rollouts[5].SampleId);
        Assert.Equal(12, rollouts.Select(r => r.SampleId).Distinct().Count());
        Assert.NotEqual(SampleIds.Of(Guid.NewGuid(), 5), rollouts[5].SampleId);
    }

    [Fact]
    public void Samples_close_to_the_policys_distribution()
    {
        using var policy = _task.CreatePolicy(1);
        var prompts = _task.PromptPool(1).Take(1).ToList();
        using var scope = NewDisposeScope();
        var probs = _task.ActionProbabilities(policy)[0].data<float>().ToArray();
        var expected = probs.Select((p, a) => p * a).Sum();

        var rollouts = _task.Generate(policy, prompts, 20_000, 1.0, seed: 5, policyVersion: 0, Guid.NewGuid());

        Assert.Equal(expected, rollouts.Average(r => r.ResponseTokens[0]), 0.5);
    }

    [Fact]
    public void Sharpens_the_distribution_at_low_temperature()
    {
        using var policy = _task.CreatePolicy(1);
        _task.FitReference(policy, 1);   // pi_data's mode (bin 0, 0.079) leads bin 99 (0.042) by 0.63 nats: 12.6 at T = 0.05
        var prompts = _task.PromptPool(1).Take(1).ToList();

        var cold = _task.Generate(policy, prompts, 2_000, 0.05, seed: 5, policyVersion: 0, Guid.NewGuid());

        using var scope = NewDisposeScope();
        var mode = _task.ActionProbabilities(policy)[0].argmax().item<long>();
        Assert.True(cold.Count(r => r.ResponseTokens[0] == mode) > 1_500);
    }
}

public class Fitting_the_bandit_reference
{
    [Theory]
    [InlineData(70)]
    [InlineData(20)]
    public void Brings_the_expected_gold_reward_close_to_pi_datas(double center)
    {
        var task = Bandits.Task(center);
        using var policy = task.CreatePolicy(1);

        var loss = task.FitReference(policy, 1);

        var entropy = -task.DataDistribution.Sum(q => q * Math.Log(q));
        Assert.InRange(loss, entropy, entropy + 0.01);   // cross-entropy H(pi_data, pi) >= H(pi_data); measured 4.1174 vs 4.1173
        Assert.Equal(task.DataExpectedGoldReward, task.ExpectedGoldReward(policy), 0.02);
    }
}

using PrefTune.Messages;
using PrefTune.Training.Methods;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

public class Every_registered_method
{
    public static TheoryData<string> Names() => [.. MethodRegistry.All.Select(m => m.Name)];

    [Theory]
    [MemberData(nameof(Names))]
    public void Gives_a_finite_loss_and_one_adam_step_changes_the_policy(string name)
    {
        var task = Bandits.SmallFor(name);
        using var policy = task.CreatePolicy(1);
        using var reference = task.CreatePolicy(1);
        reference.requires_grad_(false);
        using var optimizer = optim.Adam(policy.parameters(), 0.01);
        var before = policy.SaveWeights();
        var loss = MethodRegistry.Create(name);

        using (var scope = NewDisposeScope())
        {
            var output = loss.Compute(Bandits.Minibatch(task, policy, reference));
            Assert.True(float.IsFinite(output.Loss.item<float>()));
            Assert.All(output.Metrics.Values, m => Assert.True(float.IsFinite(m.item<float>())));
            optimizer.zero_grad();
            output.Loss.backward();
            optimizer.step();
        }

        Assert.NotEqual(before, policy.SaveWeights());
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Gives_a_finite_loss_and_gradient_when_all_rewards_tie(string name)
    {
        var task = Bandits.SmallFor(name);
        using var policy = task.CreatePolicy(1);
        using var reference = task.CreatePolicy(2);   // a different reference, so the KL terms are not all zero
        reference.requires_grad_(false);
        var loss = MethodRegistry.Create(name);
        using var scope = NewDisposeScope();
        var batch = Bandits.Minibatch(task, policy, reference);

        var output = loss.Compute(batch with { Rewards = full_like(batch.Rewards, 0.5) });
        output.Loss.backward();

        Assert.True(float.IsFinite(output.Loss.item<float>()));
        Assert.All(output.Metrics.Values, m => Assert.True(float.IsFinite(m.item<float>())));
        Assert.All(policy.parameters(), p => Assert.True(p.grad is null || p.grad.isfinite().all().item<bool>()));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Has_a_summary_defaults_and_at_least_one_data_source(string name)
    {
        var method = MethodRegistry.Get(name);

        Assert.False(string.IsNullOrWhiteSpace(method.Summary));
        Assert.True(method.Axes.Supports(DataSource.Online) || method.Axes.Supports(DataSource.Offline));
        Assert.NotNull(method.Create(method.Defaults));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Rejects_a_parameter_it_does_not_have(string name)
    {
        var error = Assert.Throws<ArgumentException>(() => MethodRegistry.Create(name, new Dictionary<string, double> { ["betta"] = 1 }));

        Assert.Contains("betta", error.Message);
    }
}

public class The_method_registry
{
    [Fact]
    public void Holds_the_papers_methods_on_their_axes()
    {
        Assert.Equal(["pref-ft", "best-of-n", "best-of-n-neg", "best-of-n-neg-avg", "best-of-n-neg-sum", "rwr", "dpo", "ipo",
            "reinforce", "rloo", "ppo", "ppo-token", "grpo"], MethodRegistry.All.Select(m => m.Name));
        Assert.Equal(["ppo-token"], MethodRegistry.All.Where(m => m.TokenLevel).Select(m => m.Name));
        Assert.False(MethodRegistry.Get("pref-ft").Axes.NegativeGradient);
        Assert.False(MethodRegistry.Get("best-of-n").Axes.NegativeGradient);
        Assert.True(MethodRegistry.Get("best-of-n").Axes.Supports(DataSource.Online));
        Assert.True(MethodRegistry.Get("best-of-n").Axes.Supports(DataSource.Offline));
        Assert.True(MethodRegistry.Get("dpo").Axes.NegativeGradient);
        Assert.False(MethodRegistry.Get("reinforce").Axes.Supports(DataSource.Offline));
        Assert.Equal(0.05, MethodRegistry.Get("dpo").Defaults["beta"]);
    }

    [Fact]
    public void Lists_the_known_names_for_an_unknown_one()
    {
        var error = Assert.Throws<ArgumentException>(() => MethodRegistry.Get("trpo"));

        Assert.Contains("'trpo'", error.Message);
        Assert.Contains("pref-ft, best-of-n, best-of-n-neg, best-of-n-neg-avg, best-of-n-neg-sum, rwr, dpo, ipo, reinforce, rloo, ppo, ppo-token, grpo", error.Message);
    }

    [Fact]
    public void Rejects_an_out_of_range_parameter_by_name()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => MethodRegistry.Create("dpo", new Dictionary<string, double> { ["beta"] = 0 }));

        Assert.Contains("beta", error.Message);
    }
}

/// <summary>PAPER.md's Table 1, row by row; `preftune methods` prints the axes these tests pin.</summary>
public class The_papers_table_1
{
    // method, on-policy sampling, offline data, sample reuse, negative gradient. A method that works online and
    // offline has both data flags; its reuse is that of its online form ("n/a" offline).
    [Theory]
    [InlineData("ppo", true, false, true, true)]                 // PPO: yes / yes / yes
    [InlineData("ppo-token", true, false, true, true)]
    [InlineData("reinforce", true, false, false, true)]          // REINFORCE / RLOO: yes / no / yes
    [InlineData("rloo", true, false, false, true)]
    [InlineData("dpo", true, true, true, true)]                  // offline DPO, IPO: no / n/a / yes; on-policy DPO / IPO: yes / yes / yes
    [InlineData("ipo", true, true, true, true)]
    [InlineData("pref-ft", false, true, false, false)]           // Pref-FT: no / n/a / no
    [InlineData("rwr", true, true, true, false)]                 // offline RWR, Best-of-N: no / n/a / no; online: yes / yes / no
    [InlineData("best-of-n", true, true, true, false)]
    [InlineData("best-of-n-neg", true, true, true, true)]        // Best-of-N + negative gradient: either / either / yes
    [InlineData("best-of-n-neg-avg", true, true, true, true)]
    [InlineData("best-of-n-neg-sum", true, true, true, true)]
    public void Places_each_method_on_the_papers_axes(string name, bool onPolicy, bool offline, bool reuse, bool negative)
    {
        Assert.Equal(new MethodAxes(onPolicy, offline, reuse, negative), MethodRegistry.Get(name).Axes);
    }

    [Fact]
    public void Covers_every_registered_method_but_grpo_which_postdates_the_paper()
    {
        var inTable = typeof(The_papers_table_1).GetMethod(nameof(Places_each_method_on_the_papers_axes))!
            .GetCustomAttributes(typeof(InlineDataAttribute), false).Cast<InlineDataAttribute>()
            .Select(row => (string)row.GetData(null!).Single()[0]);

        Assert.Equal(MethodRegistry.All.Select(m => m.Name).Except(["grpo"]).Order(), inTable.Order());
    }
}

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
        var task = Bandits.Small();
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
        Assert.Equal(["pref-ft", "best-of-n", "dpo", "reinforce"], MethodRegistry.All.Select(m => m.Name));
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
        var error = Assert.Throws<ArgumentException>(() => MethodRegistry.Get("ppo"));

        Assert.Contains("'ppo'", error.Message);
        Assert.Contains("pref-ft, best-of-n, dpo, reinforce", error.Message);
    }

    [Fact]
    public void Rejects_an_out_of_range_parameter_by_name()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => MethodRegistry.Create("dpo", new Dictionary<string, double> { ["beta"] = 0 }));

        Assert.Contains("beta", error.Message);
    }
}

using PrefTune.Training.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.RewardModels;

/// <summary>
/// One pair worked by hand, r_w = 1, r_l = 0. Without a margin: loss = -log sigmoid(1) = log(1 + e^-1) = 0.31326169,
/// dL/dr_w = -(1 - sigmoid(1)) = -0.26894142 and dL/dr_l = +0.26894142 (the loss pushes them apart). With h = 0.5:
/// log(1 + e^-0.5) = 0.47407698 and dL/dr_w = -(1 - sigmoid(0.5)) = -0.37754067: a margin still to reach pulls harder.
/// Centering with c = 0.01 adds c (r_w + r_l)^2 = 0.01 and 2c (r_w + r_l) = 0.02 to both gradients.
/// </summary>
public class When_the_bradley_terry_loss_is_computed
{
    private static (double Loss, double GradChosen, double GradRejected) Case(double chosen, double rejected, double? margin, double center)
    {
        using var scope = NewDisposeScope();
        var w = tensor(new[] { chosen }, requires_grad: true);     // (1) float64
        var l = tensor(new[] { rejected }, requires_grad: true);   // (1)
        var loss = BradleyTerryLoss.Compute(w, l, margin is { } h ? tensor(new[] { h }) : null, center);
        loss.backward();
        return (loss.item<double>(), w.grad!.item<double>(), l.grad!.item<double>());
    }

    [Fact]
    public void Without_a_margin_it_is_minus_log_sigmoid_of_the_difference()
    {
        var (loss, gw, gl) = Case(1, 0, null, 0);
        Assert.Equal(0.31326169, loss, 7);
        Assert.Equal(-0.26894142, gw, 7);
        Assert.Equal(0.26894142, gl, 7);
    }

    [Fact]
    public void A_margin_is_subtracted_from_the_difference()
    {
        var (loss, gw, gl) = Case(1, 0, 0.5, 0);
        Assert.Equal(0.47407698, loss, 7);
        Assert.Equal(-0.37754067, gw, 7);
        Assert.Equal(0.37754067, gl, 7);
    }

    [Fact]
    public void Centering_adds_c_times_the_squared_sum()
    {
        var (loss, gw, gl) = Case(1, 0, null, 0.01);
        Assert.Equal(0.31326169 + 0.01, loss, 7);
        Assert.Equal(-0.26894142 + 0.02, gw, 7);
        Assert.Equal(0.26894142 + 0.02, gl, 7);
    }

    [Fact]
    public void Equal_rewards_give_ln_2()
    {
        Assert.Equal(Math.Log(2), Case(0.3, 0.3, null, 0).Loss, 7);
    }
}

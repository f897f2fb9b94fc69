using PrefTune.Training.Methods;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

public class Training_steps_on_the_bandit
{
    [Theory]
    [MemberData(nameof(Every_registered_method.Names), MemberType = typeof(Every_registered_method))]
    public void Leave_no_live_tensors_behind(string name)
    {
        var task = Bandits.SmallFor(name);
        using var policy = task.CreatePolicy(1);
        using var reference = task.CreatePolicy(1);
        reference.requires_grad_(false);
        using var optimizer = optim.Adam(policy.parameters(), 0.01);
        var loss = MethodRegistry.Create(name);
        void Step(long seed)
        {
            using var scope = NewDisposeScope();
            var output = loss.Compute(Bandits.Minibatch(task, policy, reference, seed: seed));
            optimizer.zero_grad();
            output.Loss.backward();
            optimizer.step();
            _ = output.Metrics.Values.Select(m => m.item<float>()).ToList();
        }

        for (var i = 0; i < 3; i++) Step(i);   // warm-up: Adam's state and the gradients now exist
        DisposeScopeManager.Statistics.Reset();
        for (var i = 0; i < 5; i++) Step(100 + i);
        var afterFive = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 50; i++) Step(200 + i);

        Assert.Equal(afterFive, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

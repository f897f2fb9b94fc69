using PrefTune.Messages;
using PrefTune.Training.Optimization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Learner;

/// <summary>
/// The Learner's optimizer, whichever the run names (<see cref="RunSpec.Optimizer"/>): plain Adam at the loop's learning
/// rate, as the bandit study trains (no clipping, no schedule), or <see cref="PolicyOptimizer"/>'s AdamW with weight
/// decay, clipping and a schedule. Both step on the gradients accumulated since <see cref="ZeroGrad"/>.
/// </summary>
internal abstract class LearnerOptimizer : IDisposable
{
    /// <summary>The torch optimizer whose state a checkpoint's trainer state holds.</summary>
    public abstract optim.Optimizer Inner { get; }
    /// <summary>Set when the run has a schedule to report: the rate each step used.</summary>
    public abstract bool ReportsRate { get; }
    public abstract void ZeroGrad();
    public abstract OptimizerStep Step();
    public abstract void Dispose();

    /// <param name="stepsTaken">The policy version the optimizer starts at (one step per version): a schedule continues there.</param>
    public static LearnerOptimizer For(IEnumerable<Parameter> parameters, OptimizerSettings? settings, LoopSpec loop, int stepsTaken) =>
        settings is null
            ? new PlainAdam(parameters.ToList(), loop.LearningRate)
            : new Scheduled(new PolicyOptimizer(parameters, settings, loop.LearningRate, loop.GradientSteps, stepsTaken));

    private sealed class PlainAdam(List<Parameter> parameters, double learningRate) : LearnerOptimizer
    {
        private readonly optim.Optimizer adam = optim.Adam(parameters, learningRate);
        public override optim.Optimizer Inner => adam;
        public override bool ReportsRate => false;
        public override void ZeroGrad() => adam.zero_grad();

        public override OptimizerStep Step()
        {
            using var scope = NewDisposeScope();
            var norm = Math.Sqrt(parameters.Where(p => p.grad is not null).Sum(p => p.grad!.pow(2).sum().item<float>()));
            adam.step();
            Training.LanguageModels.MixedPrecision.WeightsChanged(parameters);   // bf16 copies of the old weights
            return new OptimizerStep(norm, learningRate);
        }

        public override void Dispose() => adam.Dispose();
    }

    private sealed class Scheduled(PolicyOptimizer optimizer) : LearnerOptimizer
    {
        public override optim.Optimizer Inner => optimizer.Inner;
        public override bool ReportsRate => true;
        public override void ZeroGrad() => optimizer.ZeroGrad();
        public override OptimizerStep Step() => optimizer.Step();
        public override void Dispose() => optimizer.Dispose();
    }
}

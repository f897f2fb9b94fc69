using PrefTune.Messages;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Training.Optimization;

/// <summary>What one optimizer step did.</summary>
/// <param name="GradNorm">The global L2 norm of the gradients before clipping.</param>
/// <param name="LearningRate">The rate the step used (base x schedule multiplier).</param>
public sealed record OptimizerStep(double GradNorm, double LearningRate);

/// <summary>
/// One policy's optimizer as <see cref="OptimizerSettings"/> describes it: per step, clip the gradients' global norm,
/// set the scheduled learning rate, take an AdamW step (torch's, decoupled decay: p -= lr * lambda * p before the
/// Adam update). Biases and norm weights (1-D parameters) are not decayed. Owns the AdamW state: dispose it.
/// </summary>
public sealed class PolicyOptimizer : IDisposable
{
    private readonly List<Parameter> parameters;
    private readonly AdamW adam;
    private readonly OptimizerSettings settings;
    private readonly int totalSteps;
    private readonly double learningRate;

    /// <param name="learningRate">The base rate, the schedule's peak (the loop's learning_rate).</param>
    /// <param name="totalSteps">The run's optimizer steps (iterations x T x B / M): where the schedule ends.</param>
    /// <param name="stepsTaken">Steps a restored learner has already taken (its policy version): the schedule continues from there.</param>
    public PolicyOptimizer(IEnumerable<Parameter> parameters, OptimizerSettings settings, double learningRate, int totalSteps, int stepsTaken = 0)
    {
        if (!(double.IsFinite(learningRate) && learningRate > 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "learning_rate must be positive");
        this.learningRate = learningRate;
        if (stepsTaken < 0) throw new ArgumentOutOfRangeException(nameof(stepsTaken), stepsTaken, "steps taken must be at least 0");
        StepsTaken = stepsTaken;
        this.settings = settings.Validate();
        this.parameters = parameters.Where(p => p.requires_grad).ToList();
        if (this.parameters.Count == 0) throw new ArgumentException("no trainable parameters", nameof(parameters));
        this.totalSteps = totalSteps;
        _ = LearningRateSchedule.Multiplier(settings.Schedule, 0, settings.WarmupSteps, totalSteps);   // rejects a bad warmup now, not mid-run
        AdamW.ParamGroup Group(IEnumerable<Parameter> group, double decay) =>
            new(group, lr: learningRate, beta1: settings.Beta1, beta2: settings.Beta2, eps: settings.Eps, weight_decay: decay);
        adam = optim.AdamW(
            [Group(this.parameters.Where(p => p.dim() >= 2), settings.WeightDecay), Group(this.parameters.Where(p => p.dim() < 2), 0)],
            lr: learningRate, beta1: settings.Beta1, beta2: settings.Beta2, eps: settings.Eps, weight_decay: settings.WeightDecay);
    }

    /// <summary>Optimizer steps taken so far: the schedule's position.</summary>
    public int StepsTaken { get; private set; }

    /// <summary>The torch optimizer (for saving and restoring its state with the trainer's).</summary>
    public optim.Optimizer Inner => adam;

    public void ZeroGrad() => adam.zero_grad();

    /// <summary>Clips, schedules and steps on the gradients accumulated since <see cref="ZeroGrad"/>.</summary>
    public OptimizerStep Step()
    {
        var withGrad = parameters.Where(p => p.grad is not null).ToList();
        var norm = settings.MaxGradNorm is { } max
            ? nn.utils.clip_grad_norm_(withGrad, max)
            : GlobalNorm(withGrad);
        var lr = learningRate * LearningRateSchedule.Multiplier(settings.Schedule, StepsTaken, settings.WarmupSteps, totalSteps);
        foreach (var group in adam.ParamGroups) group.LearningRate = lr;
        adam.step();
        LanguageModels.MixedPrecision.WeightsChanged(parameters);
        StepsTaken++;
        return new OptimizerStep(norm, lr);
    }

    /// <summary>sqrt(sum of squared gradient entries) over the parameters.</summary>
    public static double GlobalNorm(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        var squares = parameters.Where(p => p.grad is not null).Select(p => p.grad!.to_type(ScalarType.Float64).pow(2).sum()).ToList();
        return squares.Count == 0 ? 0 : Math.Sqrt(stack(squares).sum().item<double>());
    }

    public void Dispose() => adam.Dispose();
}

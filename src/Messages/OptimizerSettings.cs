using System.Text.RegularExpressions;

namespace PrefTune.Messages;

/// <summary>How the learning rate moves over a run's optimizer steps (Hugging Face transformers' schedules).</summary>
public enum ScheduleKind
{
    /// <summary>get_constant_schedule_with_warmup: linear warmup, then the base rate.</summary>
    Constant,
    /// <summary>get_linear_schedule_with_warmup: linear warmup, then linear decay to 0 at the last step.</summary>
    Linear,
    /// <summary>get_cosine_schedule_with_warmup (half a cycle): linear warmup, then cosine decay to 0 at the last step.</summary>
    Cosine,
}

/// <summary>
/// The language-model learner's optimizer: AdamW with decoupled weight decay, global-norm gradient clipping, a
/// learning-rate schedule with warmup, and micro-batches for gradient accumulation. Defaults are Hugging Face
/// Trainer's (TrainingArguments); the base learning rate (the schedule's peak) is the loop's learning_rate.
/// </summary>
public sealed record OptimizerSettings
{
    /// <summary>AdamW's decoupled weight decay lambda (p -= lr * lambda * p each step), at least 0; applied to matrices and
    /// embeddings only, never to biases or norm weights (1-D parameters), as HF Trainer and nanoGPT do.</summary>
    public double WeightDecay { get; init; }
    /// <summary>beta1: decay of the running mean of gradients, in [0, 1).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>beta2: decay of the running mean of squared gradients, in [0, 1).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>eps: added to sqrt(v-hat) in the denominator, positive.</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary>Gradients are scaled down so their global L2 norm is at most this (clip_grad_norm_); null disables clipping.</summary>
    public double? MaxGradNorm { get; init; } = 1.0;
    /// <summary>The learning-rate schedule over the run's optimizer steps.</summary>
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;
    /// <summary>Optimizer steps of linear warmup from 0 to the base rate, at least 0.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>Sequences per forward pass with gradient (m); the minibatch M is accumulated from ceil(M / m) of them.
    /// null runs each minibatch in one pass.</summary>
    public int? MicroBatch { get; init; }

    /// <summary>Every invalid field, each as "field_name = value: rule" under the experiment file's snake_case name.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        void Check(bool ok, string field, object? value, string rule)
        {
            if (!ok) problems.Add($"{Key(field)} = {value}: {rule}");
        }
        Check(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "must be at least 0");
        Check(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "must lie in [0, 1)");
        Check(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "must lie in [0, 1)");
        Check(double.IsFinite(Eps) && Eps > 0, nameof(Eps), Eps, "must be positive");
        Check(MaxGradNorm is null || (double.IsFinite(MaxGradNorm.Value) && MaxGradNorm > 0), nameof(MaxGradNorm), MaxGradNorm, "must be positive (leave it out to disable clipping)");
        Check(Enum.IsDefined(Schedule), nameof(Schedule), Schedule, "must be constant, linear or cosine");
        Check(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, "must be at least 0");
        Check(MicroBatch is null || MicroBatch >= 1, nameof(MicroBatch), MicroBatch, "must be at least 1 (leave it out for whole minibatches)");
        return problems;
    }

    /// <summary>Throws, naming every bad field at once, unless the settings are valid; returns them for chaining.</summary>
    /// <exception cref="ArgumentException">One line per invalid field.</exception>
    public OptimizerSettings Validate()
    {
        var problems = Problems();
        return problems.Count == 0 ? this : throw new ArgumentException("optimizer: " + string.Join("; ", problems));
    }

    /// <summary>The experiment file's name of a property: LearningRate -> learning_rate, Beta1 -> beta1.</summary>
    public static string Key(string property) => Regex.Replace(property, "(?<=[a-z0-9])([A-Z])", "_$1").ToLowerInvariant();
}

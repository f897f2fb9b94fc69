using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// The quantities every loss reads, computed once per minibatch (TRL-style): a minibatch of G prompt
/// groups with C responses each. All tensors are [G, C], float32.
/// </summary>
public sealed record GroupBatch
{
    /// <summary>log pi_theta(y|x), sequence level; carries the gradient.</summary>
    public required Tensor LogProbs { get; init; }
    /// <summary>log pi_ref(y|x) of the frozen reference; no gradient.</summary>
    public required Tensor RefLogProbs { get; init; }
    /// <summary>log pi_old(y|x) of the policy that sampled y (importance ratios, PPO); no gradient.</summary>
    public required Tensor SamplingLogProbs { get; init; }
    /// <summary>Training reward r(x, y) (proxy or gold as the task says).</summary>
    public required Tensor Rewards { get; init; }
    /// <summary>Response lengths in tokens (token-mean losses divide by them).</summary>
    public required Tensor Lengths { get; init; }
}

/// <summary>A loss value plus scalar diagnostics (TRL's names without the train/ prefix, e.g. "rewards/margins").</summary>
public sealed record LossOutput(Tensor Loss, IReadOnlyDictionary<string, Tensor> Metrics);

/// <summary>One method's objective: log-probs in, loss out. Stateful methods (a running baseline) keep state per run.</summary>
public interface IPreferenceLoss
{
    LossOutput Compute(GroupBatch batch);
}

/// <summary>Where a method sits on the study's three axes (PAPER.md, Table 1).</summary>
/// <param name="OnPolicySampling">The method can train on fresh samples of the current policy (DataSource.Online).</param>
/// <param name="OfflineData">The method can train on the fixed dataset D_pref (DataSource.Offline). A method with
/// both flags works either way (Best-of-N, DPO); the run's MethodSpec.Data picks one.</param>
/// <param name="SampleReuse">Several passes over one batch (T &gt; 1) are meaningful for the method.</param>
/// <param name="NegativeGradient">The loss pushes likelihood down on some responses.</param>
public sealed record MethodAxes(bool OnPolicySampling, bool OfflineData, bool SampleReuse, bool NegativeGradient)
{
    /// <summary>Whether the method can train on data from <paramref name="source"/>.</summary>
    public bool Supports(PrefTune.Messages.DataSource source) =>
        source == PrefTune.Messages.DataSource.Online ? OnPolicySampling : OfflineData;
}

/// <summary>A registered method: its name, axes, defaults and how to build its loss from hyperparameters.</summary>
public sealed record MethodDescriptor
{
    public required string Name { get; init; }
    public required string Summary { get; init; }
    public required MethodAxes Axes { get; init; }
    /// <summary>Hyperparameters with the paper's defaults; an experiment may set only these names.</summary>
    public required IReadOnlyDictionary<string, double> Defaults { get; init; }
    public required Func<IReadOnlyDictionary<string, double>, IPreferenceLoss> Create { get; init; }
}

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
    /// <summary>Per-token view for token-level methods (<see cref="MethodDescriptor.TokenLevel"/>); null otherwise.</summary>
    public TokenBatch? Tokens { get; init; }
}

/// <summary>
/// The per-token quantities of a [G, C] minibatch, for token-level methods (PPO with a value head and GAE). Every
/// tensor is [G, C, L], float32, L the longest response; position t is response token t, zero past a response's end.
/// The sequence-level tensors of the <see cref="GroupBatch"/> are the masked sums over t of these log-probs.
/// </summary>
public sealed record TokenBatch
{
    /// <summary>log pi_theta(y_t|x, y_&lt;t); carries the gradient.</summary>
    public required Tensor LogProbs { get; init; }
    /// <summary>log pi_ref(y_t|x, y_&lt;t); no gradient.</summary>
    public required Tensor RefLogProbs { get; init; }
    /// <summary>log pi_old(y_t|x, y_&lt;t) of the policy that sampled y (the rollout's token log-probs); no gradient.</summary>
    public required Tensor SamplingLogProbs { get; init; }
    /// <summary>V_theta(x, y_&lt;t), the current policy's value head; carries the gradient.</summary>
    public required Tensor Values { get; init; }
    /// <summary>The value estimates GAE and the value clip are measured against; no gradient (see the method for where they come from).</summary>
    public required Tensor OldValues { get; init; }
    /// <summary>1 on response tokens, 0 on padding.</summary>
    public required Tensor Mask { get; init; }
}

/// <summary>A loss value plus scalar diagnostics (TRL's names without the train/ prefix, e.g. "rewards/margins").</summary>
public sealed record LossOutput(Tensor Loss, IReadOnlyDictionary<string, Tensor> Metrics)
{
    /// <summary>The (chosen, rejected) pairs a pair method trained on in this minibatch; null for methods that form no pairs.</summary>
    public PairsUsed? Pairs { get; init; }
}

/// <summary>
/// Which pairs a pair loss formed from a [G, C] minibatch and by what rule: indices (group g, chosen c_w, rejected c_l)
/// into the minibatch, so the caller can map them to sample ids and rewards.
/// </summary>
/// <param name="Rule">How the pairs were formed, e.g. "ranked-pairs" (every ordered pair with a reward gap above the
/// threshold) or "best-vs-worst".</param>
/// <param name="Threshold">The reward gap a pair had to exceed (r_w - r_l &gt; Threshold).</param>
/// <param name="Candidates">The responses per prompt the pairs were chosen among (C).</param>
/// <param name="Indices">One entry per pair, in the order the loss used them.</param>
public sealed record PairsUsed(string Rule, double Threshold, int Candidates, IReadOnlyList<(int Group, int Chosen, int Rejected)> Indices);

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
    /// <summary>The loss reads <see cref="GroupBatch.Tokens"/>: it needs a policy that scores responses token by token and
    /// has a value head (the bandit's "gpt" policy). The Learner fills the per-token tensors only for such methods.</summary>
    public bool TokenLevel { get; init; }
    /// <summary>Hyperparameters with the paper's defaults; an experiment may set only these names.</summary>
    public required IReadOnlyDictionary<string, double> Defaults { get; init; }
    public required Func<IReadOnlyDictionary<string, double>, IPreferenceLoss> Create { get; init; }
}

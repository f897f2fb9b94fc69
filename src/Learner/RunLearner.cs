using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Methods;
using PrefTune.Training.Optimization;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Learner;

/// <summary>
/// One run's learning state and Algorithm 1, step 4: T passes over D, each split into minibatches of M
/// samples (M / C whole prompt groups), one Adam step per minibatch. Every step bumps the policy version.
/// Token-level methods (<see cref="MethodDescriptor.TokenLevel"/>) also get the per-token view of each minibatch,
/// with old values computed once per batch; pair methods' pairs are recorded on each step as sample ids.
/// </summary>
public sealed class RunLearner : IDisposable
{
    private readonly IPreferenceTask _task;
    private readonly PolicyModel _policy;
    private readonly PolicyModel _reference;
    private LearnerOptimizer? _optimizer;
    private IPreferenceLoss? _loss;
    private MethodSpec? _method;
    private bool _tokenLevel;   // the method reads GroupBatch.Tokens (MethodDescriptor.TokenLevel)

    public int Version { get; private set; }
    public string PolicyHash { get; private set; }
    public string ReferenceHash { get; private set; }
    /// <summary>Answers already given, by batch: a redelivered TrainPolicy gets the same answer and changes nothing.</summary>
    public Dictionary<Guid, PolicyTrained> Trained { get; } = [];

    private RunLearner(IPreferenceTask task, PolicyModel policy, PolicyModel reference, int version, string policyHash, string referenceHash)
    {
        _task = task;
        _policy = policy;
        _reference = reference;
        _reference.requires_grad_(false);
        _reference.eval();
        Version = version;
        PolicyHash = policyHash;
        ReferenceHash = referenceHash;
    }

    /// <summary>Builds the seeded policy, fits it to the reference data, and freezes a copy as pi_ref (copied in memory:
    /// no serialized copy of the model is made). Its hash is known once its weights are stored: <see cref="Published"/>.</summary>
    public static (RunLearner Learner, double FitLoss) Create(TaskSpec spec, int seed)
    {
        var task = PreferenceTasks.Create(spec);
        PolicyModel policy, reference;
        lock (TorchRuntime.GlobalSeedLock)
        {
            policy = task.CreatePolicy(seed);
            reference = task.CreatePolicy(seed);
        }
        var fitLoss = task.FitReference(policy, seed);
        reference.CopyWeightsFrom(policy);
        return (new RunLearner(task, policy, reference, 0, "", ""), fitLoss);
    }

    /// <summary><see cref="Create"/> with version 0's weights as one array, for small models (tests).</summary>
    public static (RunLearner Learner, byte[] Weights, double FitLoss) Initialize(TaskSpec spec, int seed)
    {
        var (learner, fitLoss) = Create(spec, seed);
        var weights = learner.SaveWeights();
        learner.ReferenceHash = learner.PolicyHash;
        return (learner, weights, fitLoss);
    }

    /// <summary>The models of a restarted Learner at the checkpoints' versions, before their weights are read
    /// (<see cref="LoadPolicy"/>, <see cref="LoadReference"/>, then <see cref="LoadTrainerState"/> if the checkpoint has it):
    /// each streams from the store in turn, so no checkpoint is ever held whole.</summary>
    public static RunLearner Restore(TaskSpec spec, CheckpointRef policyCheckpoint, CheckpointRef referenceCheckpoint)
    {
        var task = PreferenceTasks.Create(spec);
        PolicyModel policy, reference;
        lock (TorchRuntime.GlobalSeedLock)
        {
            policy = task.CreatePolicy(0);
            reference = task.CreatePolicy(0);
        }
        return new RunLearner(task, policy, reference, policyCheckpoint.Version, policyCheckpoint.Sha256, referenceCheckpoint.Sha256);
    }

    public void LoadPolicy(Stream weights) => _policy.LoadWeights(weights);

    public void LoadReference(Stream weights) => _reference.LoadWeights(weights);

    /// <summary>Builds <paramref name="next"/>'s method and optimizer now and loads the saved state into them, so they continue
    /// exactly; a state saved for another method is left unread (that method starts afresh, as without a state).</summary>
    public void LoadTrainerState(Stream state, TrainPolicy next)
    {
        using var reader = new BinaryReader(state, System.Text.Encoding.UTF8, leaveOpen: true);
        if (TrainerState.ReadMethod(reader) != next.Method.Name) return;
        EnsureMethod(next.Method, next.Loop, next.Optimizer);
        TrainerState.ApplyTo(reader, _optimizer!.Inner, _loss!);
    }

    /// <summary>Remembers the stored weights' hash as the current version's (and, at version 0, pi_ref's).</summary>
    public void Published(CheckpointRef checkpoint)
    {
        PolicyHash = checkpoint.Sha256;
        if (Version == 0 && ReferenceHash == "") ReferenceHash = checkpoint.Sha256;
    }

    /// <summary>Whether there is optimizer and loss state to save (none before the first step).</summary>
    public bool HasTrainerState => _optimizer is not null && _loss is not null && _method is not null;

    /// <summary>A checkpoint store's writer for the optimizer and loss state that continue training from the current weights.</summary>
    public Task WriteTrainerStateAsync(Stream destination, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        TrainerState.Save(destination, _method!.Name, _optimizer!.Inner, _loss!);
        return Task.CompletedTask;
    }

    /// <summary>A checkpoint store's writer for the current weights.</summary>
    public Task WriteWeightsAsync(Stream destination, CancellationToken cancellationToken) => _policy.WriteWeightsAsync(destination, cancellationToken);

    /// <summary>The trainer state as one array (null before the first step), for small models (tests).</summary>
    public byte[]? SaveTrainerState() =>
        HasTrainerState ? TrainerState.Save(_method!.Name, _optimizer!.Inner, _loss!) : null;

    /// <summary>T passes of minibatches over the batch; returns one <see cref="UpdateApplied"/> per gradient step.</summary>
    public IReadOnlyList<UpdateApplied> Train(TrainPolicy command)
    {
        var loop = command.Loop;
        EnsureMethod(command.Method, loop, command.Optimizer);
        var microBatch = command.Optimizer?.MicroBatch;
        var groups = GroupsOf(command.Samples, loop.C);
        var groupsPerMinibatch = loop.M / loop.C;
        if (groups.Count % groupsPerMinibatch != 0)
            throw new ArgumentException($"batch {command.BatchId}: {groups.Count} prompt groups do not split into minibatches of M/C = {groupsPerMinibatch}");

        var oldValues = _tokenLevel ? OldValues(command.Samples) : null;
        var reference = _tokenLevel ? null : ReferenceLogProbsOf(command.Samples, microBatch ?? command.Samples.Count);
        var order = new Random(unchecked((int)command.Seed));
        var updates = new List<UpdateApplied>();
        for (var pass = 0; pass < loop.T; pass++)
        {
            var shuffled = groups.ToArray();
            order.Shuffle(shuffled);
            for (var minibatch = 0; minibatch < shuffled.Length / groupsPerMinibatch; minibatch++)
            {
                var samples = shuffled.Skip(minibatch * groupsPerMinibatch).Take(groupsPerMinibatch).SelectMany(g => g).ToList();
                var (loss, metrics, logRatios, pairs) = oldValues is null
                    ? SequenceStep(samples, groupsPerMinibatch, loop.C, command.BatchId, reference!, microBatch)
                    : TokenStep(samples, groupsPerMinibatch, loop.C, command.BatchId, oldValues);
                updates.Add(new UpdateApplied
                {
                    RunId = command.RunId,
                    BatchId = command.BatchId,
                    Step = Version + 1,
                    Pass = pass,
                    Minibatch = minibatch,
                    VersionBefore = Version,
                    VersionAfter = Version + 1,
                    SampleIds = samples.Select(s => s.Rollout.SampleId).ToList(),
                    Loss = loss,
                    Metrics = metrics,
                    LogRatios = logRatios,
                    Pairs = pairs,
                });
                Version++;
            }
        }
        return updates;
    }

    /// <summary>Serializes the current weights as one array and remembers their hash as the current version's (small models, tests).</summary>
    public byte[] SaveWeights()
    {
        var weights = _policy.SaveWeights();
        PolicyHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(weights));
        return weights;
    }

    /// <summary>
    /// One gradient step of a sequence-level method: the loss, unchanged, on the [G, C] sequence log-probs, its gradient
    /// accumulated over micro-batches when the optimizer names one (<see cref="GradientAccumulation"/>), then the
    /// optimizer's step. pi_ref's log-probs come from <paramref name="reference"/>, computed once for the batch.
    /// </summary>
    private (double Loss, Dictionary<string, double> Metrics, double[] LogRatios, IReadOnlyList<PairBuilt>? Pairs) SequenceStep(List<TrainingSample> samples,
        int groups, int c, Guid batchId, IReadOnlyDictionary<Guid, float> reference, int? microBatch)
    {
        using var scope = NewDisposeScope();
        var rollouts = samples.Select(s => s.Rollout).ToList();
        var device = _policy.Device;                                                           // the batch's tensors go where the weights are
        var refLogProbs = tensor(rollouts.Select(r => reference[r.SampleId]).ToArray(), device: device).reshape(groups, c);   // [G, C]
        var fixedPart = WithSamples(samples, groups, c, zeros(groups, c, device: device), refLogProbs);   // LogProbs replaced by the policy's below
        _optimizer!.ZeroGrad();
        var result = GradientAccumulation.Backward(rollouts.Count, microBatch ?? rollouts.Count,
            (start, count) => _task.SequenceLogProbs(_policy, rollouts.GetRange(start, count)),   // [count], carries grad
            logProbs => _loss!.Compute(fixedPart with { LogProbs = logProbs.reshape(groups, c) }));
        var loss = (float)result.Loss;
        if (!float.IsFinite(loss))
            throw new InvalidOperationException($"non-finite loss ({loss}) at step {Version + 1} in batch {batchId}; no checkpoint was published from it");
        var logProbs = result.LogProbs.reshape(groups, c);                                     // [G, C], before the step
        // before the step: log pi_theta - log pi_old per sample, in the order of samples
        var logRatios = (logProbs - fixedPart.SamplingLogProbs).flatten().to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        var step = _optimizer.Step();
        var metrics = StepMetrics(loss, step, (logProbs - refLogProbs).mean().item<float>());
        foreach (var (name, value) in result.Metrics)
            metrics["train/" + name] = value;
        return (loss, metrics, logRatios, PairsOf(result.Pairs, samples, c));
    }

    /// <summary>One gradient step of a token-level method on the minibatch's per-token view (no micro-batches: PPO's
    /// token terms are computed on the whole minibatch).</summary>
    private (double Loss, Dictionary<string, double> Metrics, double[] LogRatios, IReadOnlyList<PairBuilt>? Pairs) TokenStep(List<TrainingSample> samples,
        int groups, int c, Guid batchId, IReadOnlyDictionary<TrainingSample, float[]> oldValues)
    {
        using var scope = NewDisposeScope();
        var batch = TokenBatchOf(samples, groups, c, oldValues);
        var (logProbs, refLogProbs) = (batch.LogProbs, batch.RefLogProbs);                     // [G, C] each
        // before the step: log pi_theta - log pi_old per sample, in the order of samples
        var logRatios = (logProbs.detach() - batch.SamplingLogProbs).flatten().to_type(ScalarType.Float64).data<double>().ToArray();
        var output = _loss!.Compute(batch);
        var loss = output.Loss.item<float>();
        if (!float.IsFinite(loss))
            throw new InvalidOperationException($"non-finite loss ({loss}) at step {Version + 1} in batch {batchId}; no checkpoint was published from it");

        _optimizer!.ZeroGrad();
        output.Loss.backward();
        var step = _optimizer.Step();
        var metrics = StepMetrics(loss, step, (logProbs.detach() - refLogProbs).mean().item<float>());
        foreach (var (name, value) in output.Metrics)
            metrics["train/" + name] = value.item<float>();
        return (loss, metrics, logRatios, PairsOf(output.Pairs, samples, c));
    }

    /// <summary>The metrics every step reports; kl is the minibatch's mean log pi(y) - log pi_ref(y): KL(pi || pi_ref) when y ~ pi
    /// (online, no lag).</summary>
    private Dictionary<string, double> StepMetrics(float loss, OptimizerStep step, float kl)
    {
        var metrics = new Dictionary<string, double>
        {
            ["train/loss"] = loss,
            ["train/grad_norm"] = step.GradNorm,
            ["train/objective/kl"] = kl,
        };
        if (_optimizer!.ReportsRate) metrics["train/learning_rate"] = step.LearningRate;
        return metrics;
    }

    /// <summary>log pi_ref(y|x) of every sample of the batch, without gradient, in chunks of <paramref name="chunk"/>: pi_ref is
    /// frozen, so the T passes and their minibatches read it rather than running the reference again.</summary>
    private Dictionary<Guid, float> ReferenceLogProbsOf(IReadOnlyList<TrainingSample> samples, int chunk)
    {
        var result = new Dictionary<Guid, float>(samples.Count);
        using var noGrad = no_grad();
        foreach (var part in samples.Chunk(chunk))
        {
            using var scope = NewDisposeScope();
            var values = _task.SequenceLogProbs(_reference, part.Select(s => s.Rollout).ToList()).cpu().data<float>().ToArray();
            for (var i = 0; i < part.Length; i++) result[part[i].Rollout.SampleId] = values[i];
        }
        return result;
    }

    /// <summary>The [G, C] batch from the model's log-probs plus what the samples carry (sampling log-probs, rewards, lengths).</summary>
    private static GroupBatch WithSamples(List<TrainingSample> samples, int groups, int c, Tensor logProbs, Tensor refLogProbs) => new()
    {
        LogProbs = logProbs,
        RefLogProbs = refLogProbs,
        SamplingLogProbs = tensor(samples.Select(s => s.Rollout.TokenLogProbs.Sum()).ToArray(), device: logProbs.device).reshape(groups, c),
        Rewards = tensor(samples.Select(s => (float)s.Reward).ToArray(), device: logProbs.device).reshape(groups, c),
        Lengths = tensor(samples.Select(s => (float)s.Rollout.ResponseTokens.Length).ToArray(), device: logProbs.device).reshape(groups, c),
    };

    /// <summary>
    /// The minibatch with its per-token view for token-level methods: [G, C, L] token log-probs and values from one
    /// forward pass of the policy (with grad), pi_ref's token log-probs, the rollouts' sampling log-probs, the batch's
    /// old values and the mask; the sequence-level log-probs are the masked sums of the token ones.
    /// </summary>
    private GroupBatch TokenBatchOf(List<TrainingSample> samples, int groups, int c, IReadOnlyDictionary<TrainingSample, float[]> oldValues)
    {
        var rollouts = samples.Select(s => s.Rollout).ToList();
        var scores = ScoreTokens(_policy, rollouts);                                            // [N, L] each, carry grad
        TokenScores refScores;
        using (no_grad())
            refScores = ScoreTokens(_reference, rollouts);                                      // [N, L] each
        var length = (int)scores.LogProbs.shape[1];
        var mask = tensor(Padded(rollouts.Select(r => Enumerable.Repeat(1f, r.ResponseTokens.Length).ToArray()).ToList(), length));   // [N, L]
        var sampling = tensor(Padded(rollouts.Select(r => r.TokenLogProbs).ToList(), length));                                      // [N, L]
        var old = tensor(Padded(samples.Select(s => oldValues[s]).ToList(), length));                                               // [N, L]
        var logProbs = scores.LogProbs * mask;                                                  // [N, L]
        var refLogProbs = refScores.LogProbs * mask;                                            // [N, L]
        Tensor Tokens(Tensor t) => t.reshape(groups, c, length);                                // [N, L] -> [G, C, L]
        return WithSamples(samples, groups, c, logProbs.sum(1).reshape(groups, c), refLogProbs.sum(1).reshape(groups, c)) with
        {
            Tokens = new TokenBatch
            {
                LogProbs = Tokens(logProbs),
                RefLogProbs = Tokens(refLogProbs),
                SamplingLogProbs = Tokens(sampling),
                Values = Tokens(scores.Values * mask),
                OldValues = Tokens(old),
                Mask = Tokens(mask),
            },
        };
    }

    /// <summary>
    /// V_old for token-level methods: the current policy's value estimates of every sample's tokens, computed without
    /// gradient before the batch's first step (the rollouts carry no values; see <see cref="PpoToken"/>).
    /// </summary>
    private Dictionary<TrainingSample, float[]> OldValues(IReadOnlyList<TrainingSample> samples)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var values = ScoreTokens(_policy, samples.Select(s => s.Rollout).ToList()).Values;      // [N, L]
        var length = (int)values.shape[1];
        var flat = values.contiguous().data<float>().ToArray();
        var result = new Dictionary<TrainingSample, float[]>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < samples.Count; i++)
            result[samples[i]] = flat.AsSpan(i * length, samples[i].Rollout.ResponseTokens.Length).ToArray();
        return result;
    }

    private TokenScores ScoreTokens(PolicyModel policy, IReadOnlyList<Rollout> rollouts) =>
        _task.ScoreTokens(policy, rollouts)
        ?? throw new InvalidOperationException($"method {_method!.Name} is token-level, but task {_task.Spec.Kind}'s policy "
            + "scores whole responses and has no value head (the bandit: use policy gpt; the language model has one)");

    /// <summary>Rows zero-padded to <paramref name="length"/>: [N, length].</summary>
    private static float[,] Padded(IReadOnlyList<float[]> rows, int length)
    {
        var result = new float[rows.Count, length];
        for (var i = 0; i < rows.Count; i++)
            for (var t = 0; t < rows[i].Length; t++)
                result[i, t] = rows[i][t];
        return result;
    }

    /// <summary>A pair method's (group, chosen, rejected) indices as sample ids and rewards; samples are group-major, C per group.</summary>
    private static List<PairBuilt>? PairsOf(PairsUsed? used, List<TrainingSample> samples, int c) =>
        used?.Indices.Select(pair =>
        {
            var (chosen, rejected) = (samples[pair.Group * c + pair.Chosen], samples[pair.Group * c + pair.Rejected]);
            return new PairBuilt
            {
                ChosenSampleId = chosen.Rollout.SampleId,
                RejectedSampleId = rejected.Rollout.SampleId,
                ChosenReward = chosen.Reward,
                RejectedReward = rejected.Reward,
                Rule = used.Rule,
                Threshold = used.Threshold,
                Candidates = used.Candidates,
            };
        }).ToList();

    private void EnsureMethod(MethodSpec method, LoopSpec loop, OptimizerSettings? optimizer)
    {
        if (_method is not null && _method.Name == method.Name && _optimizer is not null) return;
        var descriptor = MethodRegistry.Get(method.Name);
        var parameters = new Dictionary<string, double>(descriptor.Defaults);
        foreach (var (name, value) in method.Parameters) parameters[name] = value;
        _loss = descriptor.Create(parameters);
        _tokenLevel = descriptor.TokenLevel;
        _optimizer?.Dispose();
        _optimizer = LearnerOptimizer.For(_policy.parameters(), optimizer, loop, stepsTaken: Version);
        _method = method;
    }

    /// <summary>Samples grouped by prompt (Rollout.Group), in group order; every group must hold C responses.</summary>
    private static List<List<TrainingSample>> GroupsOf(IReadOnlyList<TrainingSample> samples, int c)
    {
        var groups = samples.GroupBy(s => s.Rollout.Group).OrderBy(g => g.Key).Select(g => g.ToList()).ToList();
        var wrong = groups.FirstOrDefault(g => g.Count != c);
        if (wrong is not null)
            throw new ArgumentException($"prompt group {wrong[0].Rollout.Group} has {wrong.Count} responses; C = {c}");
        return groups;
    }

    public void Dispose()
    {
        _optimizer?.Dispose();
        _policy.Dispose();
        _reference.Dispose();
    }
}

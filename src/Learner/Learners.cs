using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Training;

namespace PrefTune.Learner;

/// <summary>
/// The Learner's runs. One gate serializes libtorch work in this process (deterministic, and the
/// optimizer state of a run is never touched twice at once).
/// </summary>
public sealed class Learners(ICheckpointStore store) : IDisposable
{
    /// <summary>Runs kept in memory; an evicted run that comes back is restored from its checkpoints.</summary>
    private const int MaxRuns = 8;
    private readonly SemaphoreSlim _gate = TorchRuntime.Work;
    private readonly Dictionary<Guid, RunLearner> _runs = [];
    private readonly List<Guid> _recent = [];

    public async Task<PolicyInitialized> InitializeAsync(InitializePolicy command, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            TorchRuntime.UseThreads(command.TorchThreads);
            var (learner, fitLoss) = RunLearner.Create(command.Task, command.Seed);
            Keep(command.RunId, learner);
            var checkpoint = await store.PutAsync(0, learner.WriteWeightsAsync, cancellationToken);
            learner.Published(checkpoint);
            return new PolicyInitialized { RunId = command.RunId, Reference = checkpoint, Policy = checkpoint, ReferenceFitLoss = fitLoss };
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task<PolicyTrained> TrainAsync(TrainPolicy command, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            TorchRuntime.UseThreads(command.TorchThreads);
            var learner = await LearnerAtAsync(command, cancellationToken);
            if (learner.Trained.TryGetValue(command.BatchId, out var earlier))
                return earlier;
            var updates = learner.Train(command);
            // A version that is not kept is still stored in full, as the run's transient copy: the Sampler loads it, and a
            // Learner restarted before the next batch is recorded rebuilds from it and its trainer state.
            // Both stream from the models into the store: no copy of the size of the model (or of Adam's moments) is made.
            Task<CheckpointRef> Put(Func<Stream, CancellationToken, Task> write) => command.KeepCheckpoint
                ? store.PutAsync(learner.Version, write, cancellationToken)
                : store.PutTransientAsync(command.RunId, learner.Version, write, cancellationToken);
            var checkpoint = await Put(learner.WriteWeightsAsync);
            learner.Published(checkpoint);
            if (learner.HasTrainerState)
                checkpoint = checkpoint with { TrainerState = await Put(learner.WriteTrainerStateAsync) };
            var trained = new PolicyTrained
            {
                RunId = command.RunId,
                BatchId = command.BatchId,
                Steps = updates.Count,
                Checkpoint = checkpoint,
                Updates = updates,
            };
            learner.Trained[command.BatchId] = trained;
            return trained;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The run's learner holding the weights the command expects; rebuilt from the checkpoint store otherwise.</summary>
    private async Task<RunLearner> LearnerAtAsync(TrainPolicy command, CancellationToken cancellationToken)
    {
        if (_runs.TryGetValue(command.RunId, out var learner))
        {
            if (learner.Trained.ContainsKey(command.BatchId)) return learner;
            if (learner.Version == command.Policy.Version && learner.PolicyHash == command.Policy.Sha256) return learner;
            learner.Dispose();
            _runs.Remove(command.RunId);
        }
        learner = RunLearner.Restore(command.Task, command.Policy, command.Reference);
        try
        {
            await store.ReadAsync(command.Policy, learner.LoadPolicy, cancellationToken);
            await store.ReadAsync(command.Reference, learner.LoadReference, cancellationToken);
            if (command.Policy.TrainerState is { } state)
                await store.ReadAsync(state, stream => learner.LoadTrainerState(stream, command), cancellationToken);
        }
        catch
        {
            learner.Dispose();
            throw;
        }
        Keep(command.RunId, learner);
        return learner;
    }

    private void Keep(Guid runId, RunLearner learner)
    {
        if (_runs.Remove(runId, out var previous)) previous.Dispose();
        _recent.Remove(runId);
        if (_recent.Count >= MaxRuns)
        {
            if (_runs.Remove(_recent[0], out var oldest)) oldest.Dispose();
            _recent.RemoveAt(0);
        }
        _runs[runId] = learner;
        _recent.Add(runId);
    }

    public void Dispose()
    {
        foreach (var learner in _runs.Values) learner.Dispose();
        _runs.Clear();
    }
}

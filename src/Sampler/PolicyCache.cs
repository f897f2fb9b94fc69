using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Training;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks;

namespace PrefTune.Sampler;

/// <summary>
/// The Sampler's policies, one per run, each at a known checkpoint. A request for another version loads
/// it from the checkpoint store (by hash, so a version always means the same weights). One gate: libtorch
/// work in this process is serialized, which also keeps it deterministic.
/// </summary>
public sealed class PolicyCache(ICheckpointStore store) : IDisposable
{
    private const int MaxRuns = 16;
    private readonly SemaphoreSlim _gate = TorchRuntime.Work;
    private readonly Dictionary<(Guid Run, string Slot), LoadedPolicy> _runs = [];

    private sealed class LoadedPolicy(IPreferenceTask task, PolicyModel policy)
    {
        public IPreferenceTask Task { get; } = task;
        public PolicyModel Policy { get; } = policy;
        public CheckpointRef? Checkpoint { get; set; }
        public long LastUsed { get; set; }
    }

    /// <summary>Slot of the policy being trained; the frozen reference has its own.</summary>
    public const string PolicySlot = "policy", ReferenceSlot = "reference";

    /// <summary>Runs <paramref name="use"/> on the run's policy (or reference) loaded at <paramref name="checkpoint"/>.</summary>
    public async Task<T> UseAsync<T>(Guid runId, TaskSpec spec, CheckpointRef checkpoint, int torchThreads,
        Func<IPreferenceTask, PolicyModel, T> use, CancellationToken cancellationToken, string slot = PolicySlot)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            TorchRuntime.UseThreads(torchThreads);
            var loaded = await LoadAsync((runId, slot), spec, checkpoint, cancellationToken);
            return use(loaded.Task, loaded.Policy);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Loads a newly published checkpoint ahead of the next request, if the run is known here.</summary>
    public async Task PrefetchAsync(Guid runId, CheckpointRef checkpoint, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_runs.TryGetValue((runId, PolicySlot), out var loaded) && (loaded.Checkpoint?.Version ?? -1) < checkpoint.Version)
                await LoadAsync((runId, PolicySlot), loaded.Task.Spec, checkpoint, cancellationToken);
        }
        catch (CheckpointStoreException)
        {
            // a transient version superseded and released before this announcement was read: nothing to load ahead
            if (await store.ContainsAsync(checkpoint.Sha256, cancellationToken)) throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<LoadedPolicy> LoadAsync((Guid Run, string Slot) key, TaskSpec spec, CheckpointRef checkpoint, CancellationToken cancellationToken)
    {
        if (!_runs.TryGetValue(key, out var loaded))
        {
            EvictLeastRecentlyUsed();
            var task = PreferenceTasks.Create(spec);
            loaded = new LoadedPolicy(task, task.CreatePolicy(seed: 0));
            _runs[key] = loaded;
        }
        if (loaded.Checkpoint?.Sha256 != checkpoint.Sha256)
        {
            loaded.Checkpoint = null;   // until the whole stream is read and verified, the weights are of no known version
            await store.ReadAsync(checkpoint, loaded.Policy.LoadWeights, cancellationToken);
            loaded.Checkpoint = checkpoint;
        }
        loaded.LastUsed = Environment.TickCount64;
        return loaded;
    }

    private void EvictLeastRecentlyUsed()
    {
        if (_runs.Count < MaxRuns) return;
        var oldest = _runs.MinBy(r => r.Value.LastUsed);
        oldest.Value.Policy.Dispose();
        _runs.Remove(oldest.Key);
    }

    public void Dispose()
    {
        foreach (var loaded in _runs.Values) loaded.Policy.Dispose();
        _runs.Clear();
    }
}

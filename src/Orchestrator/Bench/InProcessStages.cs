using System.Collections.Concurrent;
using PrefTune.Learner;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Sampler;
using PrefTune.Scorer;
using PrefTune.Storage.Checkpoints;

namespace PrefTune.Orchestrator.Bench;

/// <summary>The stage calls answered by the services' own objects in this process: no bus, no event store, weights kept
/// in memory. What a run costs through this, against the pipeline, is the model work alone.</summary>
internal sealed class InProcessStages : IStageCalls, IDisposable
{
    private readonly Learners _learners;
    private readonly PolicyCache _policies;
    private readonly RewardFunctions _rewards = new();

    public InProcessStages()
    {
        var store = new MemoryCheckpointStore();
        (_learners, _policies) = (new Learners(store), new PolicyCache(store));
    }

    public Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct) => _learners.InitializeAsync(request, ct);
    public Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct) => SampleRolloutsConsumer.SampleAsync(_policies, request, ct);
    public Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct) => ScoreRolloutsConsumer.ScoreAsync(_rewards, request, ct);
    public Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct) => _learners.TrainAsync(request, ct);

    public void Dispose()
    {
        _learners.Dispose();
        _policies.Dispose();
        _rewards.Dispose();
    }
}

/// <summary>Checkpoints by content hash in a dictionary, for one bench run (transient copies are kept with the rest).</summary>
internal sealed class MemoryCheckpointStore : ICheckpointStore
{
    private readonly ConcurrentDictionary<string, byte[]> _bytes = new();

    public async Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await write(buffer, cancellationToken);
        var bytes = buffer.ToArray();
        var sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        _bytes.TryAdd(sha256, bytes);
        return new CheckpointRef { Version = version, Sha256 = sha256, Uri = $"memory:{sha256}", Bytes = bytes.Length };
    }

    public Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken) =>
        _bytes.TryGetValue(reference.Sha256, out var bytes) ? Task.FromResult<Stream>(new MemoryStream(bytes, writable: false))
            : throw new CheckpointStoreException($"checkpoint {reference.Uri} is not in this process's memory");

    public Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken) => Task.FromResult(_bytes.ContainsKey(sha256));
}

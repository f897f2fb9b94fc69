using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// Keeps the most recently put or fetched checkpoints in memory in front of another store. Safe because
/// a checkpoint is immutable: its name is the hash of its bytes. In one process the Learner's put is the
/// Sampler's next get, so the database round trip disappears from the loop.
/// </summary>
public sealed class CachingCheckpointStore(ICheckpointStore inner, long maxBytes = 256L << 20) : ICheckpointStore
{
    private readonly LinkedList<(string Hash, byte[] Bytes)> _recent = new();
    private readonly Lock _gate = new();
    private long _bytes;

    public async Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken)
    {
        var reference = await inner.PutAsync(version, bytes, cancellationToken);
        Remember(reference.Sha256, bytes);
        return reference;
    }

    public async Task<CheckpointRef> PutTransientAsync(Guid runId, int version, byte[] bytes, CancellationToken cancellationToken)
    {
        var reference = await inner.PutTransientAsync(runId, version, bytes, cancellationToken);
        Remember(reference.Sha256, bytes);
        return reference;
    }

    /// <summary>Releases the stored copies; one still in memory here is still served (it is the same content).</summary>
    public Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken) =>
        inner.ReleaseTransientAsync(runId, belowVersion, cancellationToken);

    public Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken) => inner.ContainsAsync(sha256, cancellationToken);

    public async Task<byte[]> GetAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            for (var node = _recent.First; node is not null; node = node.Next)
                if (node.Value.Hash == reference.Sha256)
                {
                    _recent.Remove(node);
                    _recent.AddFirst(node);
                    return node.Value.Bytes;
                }
        }
        var bytes = await inner.GetAsync(reference, cancellationToken);
        Remember(reference.Sha256, bytes);
        return bytes;
    }

    private void Remember(string hash, byte[] bytes)
    {
        if (bytes.LongLength > maxBytes) return;
        lock (_gate)
        {
            if (_recent.Any(entry => entry.Hash == hash)) return;
            _recent.AddFirst((hash, bytes));
            _bytes += bytes.LongLength;
            while (_bytes > maxBytes && _recent.Last is { } oldest)
            {
                _bytes -= oldest.Value.Bytes.LongLength;
                _recent.RemoveLast();
            }
        }
    }
}

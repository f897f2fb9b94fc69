using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// Keeps the most recently put or fetched checkpoints in memory in front of another store. Safe because
/// a checkpoint is immutable: its name is the hash of its bytes. In one process the Learner's put is the
/// Sampler's next get, so the database round trip disappears from the loop. A checkpoint larger than the
/// budget streams through untouched (it would evict everything else, and may not fit in an array at all).
/// </summary>
public sealed class CachingCheckpointStore(ICheckpointStore inner, long maxBytes = 256L << 20) : ICheckpointStore
{
    private readonly LinkedList<(string Hash, byte[] Bytes)> _recent = new();
    private readonly Lock _gate = new();
    private long _bytes;

    public async Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var copy = new CopyUpTo(maxBytes);
        var reference = await inner.PutAsync(version, Teeing(write, copy), cancellationToken);
        Remember(reference.Sha256, copy);
        return reference;
    }

    public async Task<CheckpointRef> PutTransientAsync(Guid runId, int version, Func<Stream, CancellationToken, Task> write,
        CancellationToken cancellationToken)
    {
        var copy = new CopyUpTo(maxBytes);
        var reference = await inner.PutTransientAsync(runId, version, Teeing(write, copy), cancellationToken);
        Remember(reference.Sha256, copy);
        return reference;
    }

    /// <summary>Releases the stored copies; one still in memory here is still served (it is the same content).</summary>
    public Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken) =>
        inner.ReleaseTransientAsync(runId, belowVersion, cancellationToken);

    public Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken) => inner.ContainsAsync(sha256, cancellationToken);

    public async Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            for (var node = _recent.First; node is not null; node = node.Next)
                if (node.Value.Hash == reference.Sha256)
                {
                    _recent.Remove(node);
                    _recent.AddFirst(node);
                    return new MemoryStream(node.Value.Bytes, writable: false);   // verified when it was put or read
                }
        }
        if (reference.Bytes > maxBytes || reference.Bytes <= 0)   // large, or of unknown size: streamed, not kept
            return await inner.OpenReadAsync(reference, cancellationToken);
        var bytes = await inner.GetAsync(reference, cancellationToken);
        Remember(reference.Sha256, bytes);
        return new MemoryStream(bytes, writable: false);
    }

    /// <summary>The writer, its bytes also copied into <paramref name="copy"/> (afresh on each call: a retried put writes again).</summary>
    private static Func<Stream, CancellationToken, Task> Teeing(Func<Stream, CancellationToken, Task> write, CopyUpTo copy) =>
        async (destination, ct) =>
        {
            copy.Restart(destination);
            await write(copy, ct);
        };

    private void Remember(string hash, CopyUpTo copy)
    {
        if (copy.Bytes() is { } bytes) Remember(hash, bytes);
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

    /// <summary>Write-only: forwards to the store's stream and keeps a copy until more than <c>limit</c> bytes passed, then
    /// drops it (a large checkpoint is not cached).</summary>
    private sealed class CopyUpTo(long limit) : WriteOnlyStream
    {
        private Stream _destination = Null;
        private MemoryStream? _copy;

        public void Restart(Stream destination) => (_destination, _copy) = (destination, new MemoryStream());

        public byte[]? Bytes() => _copy?.ToArray();

        private void Keep(ReadOnlySpan<byte> buffer)
        {
            if (_copy is null) return;
            if (_copy.Length + buffer.Length > limit) _copy = null;
            else _copy.Write(buffer);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Keep(buffer);
            _destination.Write(buffer);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Keep(buffer.Span);
            await _destination.WriteAsync(buffer, cancellationToken);
        }

        public override void Flush() => _destination.Flush();
    }
}

using System.Security.Cryptography;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// Serialized weights by content: the reference carries the lower-case hex SHA-256 of the bytes. Content travels as
/// streams, never as one whole array: a model with its optimizer state can be larger than any .NET array (2 GiB).
/// </summary>
public interface ICheckpointStore
{
    /// <summary>Stores what <paramref name="write"/> writes (once per distinct content) and returns where to find it; the
    /// hash is computed while the bytes stream. <paramref name="write"/> may be called again if the store retries (it must
    /// write the same bytes each time, as serializing the same weights does).</summary>
    Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken);

    /// <summary>The bytes of <paramref name="reference"/> as a stream verified against its hash: reading its end checks the
    /// hash, and a mismatch (or a damaged chunk, earlier) throws a <see cref="CheckpointStoreException"/> naming the Uri.
    /// Use <see cref="CheckpointStoreExtensions.ReadAsync"/> to have the end read even when the consumer stops short.</summary>
    Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken);

    /// <summary>Stores what <paramref name="write"/> writes as <paramref name="runId"/>'s transient copy of a version that is not kept:
    /// readable by hash like any other until <see cref="ReleaseTransientAsync"/> removes it. Each run has copies of its own,
    /// so releasing them never touches what another run keeps. A store without retention keeps it for good.</summary>
    Task<CheckpointRef> PutTransientAsync(Guid runId, int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        PutAsync(version, write, cancellationToken);

    /// <summary>Removes <paramref name="runId"/>'s transient copies of versions below <paramref name="belowVersion"/>
    /// (int.MaxValue: all of them).</summary>
    Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Whether the bytes of <paramref name="sha256"/> can be read (kept, or someone's transient copy).</summary>
    Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken);
}

/// <summary>Byte-array forms of the streamed calls, for small checkpoints (tests, tools); a model's weights stream.</summary>
public static class CheckpointStoreExtensions
{
    public static Task<CheckpointRef> PutAsync(this ICheckpointStore store, int version, byte[] bytes, CancellationToken cancellationToken) =>
        store.PutAsync(version, WriterOf(bytes), cancellationToken);

    public static Task<CheckpointRef> PutTransientAsync(this ICheckpointStore store, Guid runId, int version, byte[] bytes,
        CancellationToken cancellationToken) =>
        store.PutTransientAsync(runId, version, WriterOf(bytes), cancellationToken);

    /// <summary>The whole verified content as one array (at most <see cref="Array.MaxLength"/> bytes).</summary>
    public static Task<byte[]> GetAsync(this ICheckpointStore store, CheckpointRef reference, CancellationToken cancellationToken) =>
        store.ReadAsync(reference, async (stream, ct) =>
        {
            using var buffer = new MemoryStream(reference.Bytes is > 0 and <= int.MaxValue ? (int)reference.Bytes : 0);
            await stream.CopyToAsync(buffer, ct);
            return buffer.ToArray();
        }, cancellationToken);

    /// <summary>Runs <paramref name="read"/> on the verified stream of <paramref name="reference"/>, then reads what it left
    /// (a deserializer stops at its last tensor): the hash is checked either way, so a damaged checkpoint never passes.</summary>
    public static async Task<T> ReadAsync<T>(this ICheckpointStore store, CheckpointRef reference,
        Func<Stream, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        await using var stream = await store.OpenReadAsync(reference, cancellationToken);
        var result = await read(stream, cancellationToken);
        await stream.CopyToAsync(Stream.Null, cancellationToken);
        return result;
    }

    /// <summary><see cref="ReadAsync{T}"/> for a synchronous consumer (loading a state dict into a module).</summary>
    public static Task ReadAsync(this ICheckpointStore store, CheckpointRef reference, Action<Stream> read, CancellationToken cancellationToken) =>
        store.ReadAsync(reference, (stream, _) => { read(stream); return Task.FromResult(true); }, cancellationToken);

    private static Func<Stream, CancellationToken, Task> WriterOf(byte[] bytes) => (stream, ct) => stream.WriteAsync(bytes, ct).AsTask();
}

/// <summary>One stored copy of a checkpoint: kept (<see cref="TransientFor"/> null) or a run's transient copy.</summary>
public sealed record StoredCheckpoint(string Sha256, long Bytes, Guid? TransientFor, int? Version, DateTimeOffset CreatedAt);

/// <summary>What a store holds, for `preftune prune` and `preftune runs`.</summary>
public interface ICheckpointInventory
{
    Task<IReadOnlyList<StoredCheckpoint>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Removes exactly these copies, then gives the freed space back to the file system where the store can.</summary>
    Task DeleteAsync(IReadOnlyCollection<StoredCheckpoint> copies, CancellationToken cancellationToken);
}

/// <summary>A checkpoint is absent, damaged, or its store did not answer in time.</summary>
public sealed class CheckpointStoreException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

internal static class CheckpointHash
{
    public static string Of(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Rejects anything that is not 64 lower-case hex digits (it would also be unsafe in a file name).</summary>
    public static string Validate(CheckpointRef reference)
    {
        var hash = reference.Sha256;
        if (hash is not { Length: 64 } || !hash.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: '{hash}' is not a lower-case hex SHA-256");
        return hash;
    }

    /// <summary>Runs <paramref name="write"/> into <paramref name="destination"/> through a hashing stream; the content's
    /// hash and length. The one place a put computes its hash, for every store.</summary>
    public static async Task<(string Sha256, long Bytes)> WriteAsync(Stream destination, Func<Stream, CancellationToken, Task> write,
        CancellationToken ct)
    {
        await using var hashing = new HashingWriteStream(destination);
        await write(hashing, ct);
        return (hashing.Hash(), hashing.Length);
    }
}

/// <summary>Write-only: forwards to another stream (left open) and hashes what passes.</summary>
internal sealed class HashingWriteStream(Stream inner) : WriteOnlyStream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>Bytes written so far.</summary>
    public override long Length => _length;
    private long _length;

    public string Hash() => Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _hash.AppendData(buffer);
        _length += buffer.Length;
        inner.Write(buffer);
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _hash.AppendData(buffer.Span);
        _length += buffer.Length;
        await inner.WriteAsync(buffer, cancellationToken);
    }

    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Read-only: a checkpoint's content from a store's source stream (owned), hashed as it is read; at the end the length
/// and hash must be the reference's, else a <see cref="CheckpointStoreException"/> naming its Uri. Every read fills the
/// buffer unless the end comes first (deserializers that read a tensor with one call rely on it), and a forward seek
/// reads through (TorchSharp skips a tensor that way), so the hash still covers every byte.
/// </summary>
internal sealed class VerifiedReadStream(Stream source, CheckpointRef reference, Func<Exception, Exception>? translate = null) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _position;
    private bool _verified;

    public override int Read(Span<byte> buffer)
    {
        var total = 0;
        try
        {
            while (total < buffer.Length)
            {
                var read = source.Read(buffer[total..]);
                if (read == 0) break;
                total += read;
            }
        }
        catch (Exception e) when (translate?.Invoke(e) is { } translated && !ReferenceEquals(translated, e))
        {
            throw translated;
        }
        return Account(buffer[..total], buffer.Length);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var total = 0;
        try
        {
            while (total < buffer.Length)
            {
                var read = await source.ReadAsync(buffer[total..], cancellationToken);
                if (read == 0) break;
                total += read;
            }
        }
        catch (Exception e) when (translate?.Invoke(e) is { } translated && !ReferenceEquals(translated, e))
        {
            throw translated;
        }
        return Account(buffer.Span[..total], buffer.Length);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Account(ReadOnlySpan<byte> read, int wanted)
    {
        _hash.AppendData(read);
        _position += read.Length;
        if (read.Length < wanted) Verify();   // a short read is the end: every read fills its buffer otherwise
        return read.Length;
    }

    private void Verify()
    {
        if (_verified) return;
        _verified = true;
        var actual = Convert.ToHexStringLower(_hash.GetCurrentHash());
        // Bytes 0 on a reference may mean "not recorded" (references built from a bare hash): the hash decides alone then
        if (_position != reference.Bytes && reference.Bytes > 0 || actual != reference.Sha256)
            throw new CheckpointStoreException($"checkpoint {reference.Uri} is corrupt: its {_position} bytes hash to {actual}, "
                + $"expected {reference.Bytes} bytes hashing to {reference.Sha256}");
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        if (origin != SeekOrigin.Current || offset < 0)
            throw new NotSupportedException($"checkpoint {reference.Uri}: a checkpoint stream seeks forward only");
        var skip = new byte[(int)Math.Min(offset, 1 << 20)];
        for (var left = offset; left > 0;)
        {
            var read = Read(skip.AsSpan(0, (int)Math.Min(left, skip.Length)));
            if (read == 0) break;
            left -= read;
        }
        return _position;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => reference.Bytes;
    public override long Position { get => _position; set => Seek(value - _position, SeekOrigin.Current); }
    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            source.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        _hash.Dispose();
        await source.DisposeAsync();
        await base.DisposeAsync();
    }
}

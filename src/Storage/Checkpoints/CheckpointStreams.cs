namespace PrefTune.Storage.Checkpoints;

/// <summary>A stream that only writes forward: what a checkpoint writer writes into (hashing, chunking, counting).</summary>
public abstract class WriteOnlyStream : Stream
{
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public abstract override void Write(ReadOnlySpan<byte> buffer);
    public override void WriteByte(byte value) => Write([value]);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Synchronous unless overridden (Stream's own default would go round through the array overload above).</summary>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush() { }
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>
/// Write-only: collects <c>chunkSize</c> bytes, then hands them to <see cref="WriteChunkAsync"/> (synchronously when the
/// writer writes synchronously, as TorchSharp's serializers do); <see cref="CompleteAsync"/> hands over the last, partial
/// chunk. The directory store's file and the PostgreSQL store's rows are chunked by this one loop.
/// </summary>
internal abstract class ChunkingWriteStream(int chunkSize) : WriteOnlyStream
{
    private readonly byte[] _chunk = new byte[chunkSize];
    private int _filled;

    /// <summary>Chunks handed over so far.</summary>
    public int Chunks { get; private set; }

    /// <summary>Stores one chunk; <paramref name="sync"/>: without awaiting anything (the caller blocks).</summary>
    protected abstract ValueTask WriteChunkAsync(ArraySegment<byte> chunk, bool sync, CancellationToken ct);

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            buffer = buffer[Take(buffer)..];
            if (_filled == _chunk.Length) HandOver(sync: true, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (buffer.Length > 0)
        {
            buffer = buffer[Take(buffer.Span)..];
            if (_filled == _chunk.Length) await HandOver(sync: false, cancellationToken);
        }
    }

    /// <summary>Hands over the last chunk (an empty content has one empty chunk, so that it has a row, as before).</summary>
    public async ValueTask CompleteAsync(bool sync, CancellationToken ct)
    {
        if (_filled > 0 || Chunks == 0) await HandOver(sync, ct);
    }

    private int Take(ReadOnlySpan<byte> buffer)
    {
        var take = Math.Min(buffer.Length, _chunk.Length - _filled);
        buffer[..take].CopyTo(_chunk.AsSpan(_filled));
        _filled += take;
        return take;
    }

    private async ValueTask HandOver(bool sync, CancellationToken ct)
    {
        await WriteChunkAsync(new ArraySegment<byte>(_chunk, 0, _filled), sync, ct);
        Chunks++;
        _filled = 0;
    }
}

/// <summary>
/// Read-only: serves chunks that <see cref="NextChunkAsync"/> fetches (and verifies) one at a time into a buffer of
/// <c>chunkSize</c> bytes, so no more than one chunk is held. The directory store's file and the PostgreSQL store's rows
/// are read by this one loop.
/// </summary>
internal abstract class ChunkedReadStream(int chunkSize) : Stream
{
    private readonly byte[] _chunk = new byte[chunkSize];
    private int _chunkLength, _served;
    private long _position;

    /// <summary>Fills <paramref name="buffer"/> with the next chunk and returns its length; 0 at the end.
    /// <paramref name="sync"/>: without awaiting anything.</summary>
    protected abstract ValueTask<int> NextChunkAsync(byte[] buffer, bool sync, CancellationToken ct);

    public override int Read(Span<byte> buffer)
    {
        if (_served == _chunkLength && !Next(sync: true, CancellationToken.None).AsTask().GetAwaiter().GetResult()) return 0;
        return Serve(buffer);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_served == _chunkLength && !await Next(sync: false, cancellationToken)) return 0;
        return Serve(buffer.Span);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private async ValueTask<bool> Next(bool sync, CancellationToken ct)
    {
        (_chunkLength, _served) = (await NextChunkAsync(_chunk, sync, ct), 0);
        return _chunkLength > 0;
    }

    private int Serve(Span<byte> buffer)
    {
        var take = Math.Min(buffer.Length, _chunkLength - _served);
        _chunk.AsSpan(_served, take).CopyTo(buffer);
        _served += take;
        _position += take;
        return take;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// The directory store's file format: a header (<see cref="Magic"/>, format version, chunk size), then chunks of at most
/// <see cref="ChunkSize"/> bytes, each as [length int32][bytes][SHA-256 of the bytes], then a terminating length 0, the
/// content's length (int64) and its SHA-256. A damaged chunk is found when it is read, before its bytes are served, and
/// named by file and chunk; the file's name stays the SHA-256 of the content (not of the file), so a checkpoint's hash
/// does not depend on how it is stored. Files without the magic are the older plain format (the content itself) and are
/// read as they are: the magic starts with 0x89 and a line break pair, which neither a state dict nor a trainer state
/// (both begin with a small count or length) can start with.
/// </summary>
internal static class ChunkedCheckpointFile
{
    public const int ChunkSize = 8 * 1024 * 1024;
    public const int FormatVersion = 1;
    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'P', (byte)'T', (byte)'C', (byte)'K', 0x0D, 0x0A, 0x1A];
    private const int HeaderSize = 8 + 4 + 4;
    private const int HashSize = 32;

    /// <summary>Whether <paramref name="file"/> (positioned at its start) begins with the chunked header; reads nothing else.</summary>
    public static bool IsChunked(Stream file)
    {
        Span<byte> head = stackalloc byte[8];
        var read = file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        file.Position = 0;
        return read == head.Length && head.SequenceEqual(Magic);
    }

    /// <summary>Write-only: chunks what is written to it into <paramref name="file"/> (left open); <see cref="Complete"/> writes
    /// the trailer.</summary>
    public sealed class Writer : Stream
    {
        private readonly Stream _file;
        private readonly byte[] _chunk = new byte[ChunkSize];
        private int _filled;
        private long _length;

        public Writer(Stream file)
        {
            _file = file;
            Span<byte> header = stackalloc byte[HeaderSize];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
            BinaryPrimitives.WriteInt32LittleEndian(header[12..], ChunkSize);
            _file.Write(header);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            while (buffer.Length > 0)
            {
                var take = Math.Min(buffer.Length, ChunkSize - _filled);
                buffer[..take].CopyTo(_chunk.AsSpan(_filled));
                _filled += take;
                buffer = buffer[take..];
                if (_filled == ChunkSize) FlushChunk();
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        // The file is written synchronously: a chunk is 8 MiB, and the serializers that feed this write synchronously anyway.
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        private void FlushChunk()
        {
            if (_filled == 0) return;
            var data = _chunk.AsSpan(0, _filled);
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, _filled);
            _file.Write(length);
            _file.Write(data);
            _file.Write(SHA256.HashData(data));
            _length += _filled;
            _filled = 0;
        }

        /// <summary>Writes the last chunk and the trailer with the content's <paramref name="sha256"/> (hashed once, by the
        /// caller's <see cref="HashingWriteStream"/>).</summary>
        public void Complete(string sha256)
        {
            FlushChunk();
            Span<byte> trailer = stackalloc byte[4 + 8 + HashSize];
            BinaryPrimitives.WriteInt32LittleEndian(trailer, 0);
            BinaryPrimitives.WriteInt64LittleEndian(trailer[4..], _length);
            Convert.FromHexString(sha256).CopyTo(trailer[12..]);
            _file.Write(trailer);
        }

        public override void Flush() { }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length + _filled;
        public override long Position { get => Length; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>Read-only: the content of a chunked file (owned), each chunk checked against its hash before it is served,
    /// the trailer's length against what was read. Errors name the checkpoint's <paramref name="uri"/>, the file and the chunk.</summary>
    public sealed class Reader : Stream
    {
        private readonly Stream _file;
        private readonly string _path, _uri;
        private readonly byte[] _chunk;
        private int _chunkLength, _served, _index;
        private long _length;
        private bool _ended;

        public Reader(Stream file, string path, string uri)
        {
            (_file, _path, _uri) = (file, path, uri);
            Span<byte> header = stackalloc byte[HeaderSize];
            ReadExactly(header, "its header");
            if (!header[..8].SequenceEqual(Magic))
                throw Damaged("it does not start with the chunked checkpoint header");
            var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
            var chunkSize = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
            if (version != FormatVersion)
                throw Damaged($"format version {version}; this PrefTune reads version {FormatVersion}");
            if (chunkSize is <= 0 or > 256 * 1024 * 1024)
                throw Damaged($"chunk size {chunkSize} out of range");
            _chunk = new byte[chunkSize];
        }

        public override int Read(Span<byte> buffer)
        {
            if (_served == _chunkLength && !NextChunk()) return 0;
            var take = Math.Min(buffer.Length, _chunkLength - _served);
            _chunk.AsSpan(_served, take).CopyTo(buffer);
            _served += take;
            return take;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        private bool NextChunk()
        {
            if (_ended) return false;
            Span<byte> length = stackalloc byte[4];
            ReadExactly(length, $"the length of chunk {_index}");
            var size = BinaryPrimitives.ReadInt32LittleEndian(length);
            if (size == 0)
            {
                _ended = true;
                Span<byte> trailer = stackalloc byte[8 + HashSize];
                ReadExactly(trailer, "its trailer");
                // The content's hash is checked against the reference by VerifiedReadStream (it is hashed once per read);
                // the trailer's copy is for tools that check a file alone.
                var recorded = BinaryPrimitives.ReadInt64LittleEndian(trailer);
                if (recorded != _length)
                    throw Damaged($"its trailer says {recorded} bytes, its chunks hold {_length}");
                return false;
            }
            if (size < 0 || size > _chunk.Length)
                throw Damaged($"chunk {_index} claims {size} bytes (chunks are at most {_chunk.Length})");
            ReadExactly(_chunk.AsSpan(0, size), $"chunk {_index}");
            Span<byte> stored = stackalloc byte[HashSize];
            ReadExactly(stored, $"the hash of chunk {_index}");
            if (!SHA256.HashData(_chunk.AsSpan(0, size)).AsSpan().SequenceEqual(stored))
                throw Damaged($"chunk {_index} (bytes {_length}-{_length + size - 1} of the content) does not match its SHA-256");
            _length += size;
            _index++;
            (_chunkLength, _served) = (size, 0);
            return true;
        }

        private void ReadExactly(Span<byte> buffer, string what)
        {
            if (_file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) < buffer.Length)
                throw Damaged($"it ends inside {what} (truncated)");
        }

        private CheckpointStoreException Damaged(string why) => new($"checkpoint {_uri} is corrupt: file {_path}: {why}");

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _length - _chunkLength + _served; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) _file.Dispose();
            base.Dispose(disposing);
        }
    }
}

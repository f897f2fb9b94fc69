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
    public sealed class Writer : ChunkingWriteStream
    {
        private readonly Stream _file;
        private long _length;

        public Writer(Stream file) : base(ChunkSize)
        {
            _file = file;
            Span<byte> header = stackalloc byte[HeaderSize];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
            BinaryPrimitives.WriteInt32LittleEndian(header[12..], ChunkSize);
            _file.Write(header);
        }

        // The file is written synchronously either way: a chunk is 8 MiB, and the serializers that feed this write synchronously.
        protected override ValueTask WriteChunkAsync(ArraySegment<byte> chunk, bool sync, CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            if (chunk.Count == 0) return ValueTask.CompletedTask;   // length 0 is the terminator: an empty content has no chunk
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, chunk.Count);
            _file.Write(length);
            _file.Write(chunk);
            _file.Write(SHA256.HashData(chunk));
            _length += chunk.Count;
            return ValueTask.CompletedTask;
        }

        /// <summary>Writes the last chunk and the trailer with the content's <paramref name="sha256"/> (hashed once, by the
        /// caller's <see cref="HashingWriteStream"/>).</summary>
        public void Complete(string sha256)
        {
            CompleteAsync(sync: true, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            Span<byte> trailer = stackalloc byte[4 + 8 + HashSize];
            BinaryPrimitives.WriteInt32LittleEndian(trailer, 0);
            BinaryPrimitives.WriteInt64LittleEndian(trailer[4..], _length);
            Convert.FromHexString(sha256).CopyTo(trailer[12..]);
            _file.Write(trailer);
        }
    }

    /// <summary>Read-only: the content of a chunked file (owned), each chunk checked against its hash before it is served,
    /// the trailer's length against what was read. Errors name the checkpoint's <paramref name="uri"/>, the file and the chunk.</summary>
    public sealed class Reader : ChunkedReadStream
    {
        private readonly Stream _file;
        private readonly string _path, _uri;
        private int _index;
        private long _length;
        private bool _ended;

        public Reader(Stream file, string path, string uri) : base(ChunkSizeOf(file, path, uri))
        {
            (_file, _path, _uri) = (file, path, uri);
        }

        /// <summary>Reads and checks the header; the chunk size it declares.</summary>
        private static int ChunkSizeOf(Stream file, string path, string uri)
        {
            Span<byte> header = stackalloc byte[HeaderSize];
            ReadExactly(file, header, "its header", path, uri);
            if (!header[..8].SequenceEqual(Magic))
                throw Damaged(path, uri, "it does not start with the chunked checkpoint header");
            var version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
            var chunkSize = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
            if (version != FormatVersion)
                throw Damaged(path, uri, $"format version {version}; this PrefTune reads version {FormatVersion}");
            if (chunkSize is <= 0 or > 256 * 1024 * 1024)
                throw Damaged(path, uri, $"chunk size {chunkSize} out of range");
            return chunkSize;
        }

        protected override ValueTask<int> NextChunkAsync(byte[] buffer, bool sync, CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            if (_ended) return ValueTask.FromResult(0);
            Span<byte> length = stackalloc byte[4];
            ReadExactly(_file, length, $"the length of chunk {_index}", _path, _uri);
            var size = BinaryPrimitives.ReadInt32LittleEndian(length);
            if (size == 0)
            {
                _ended = true;
                Span<byte> trailer = stackalloc byte[8 + HashSize];
                ReadExactly(_file, trailer, "its trailer", _path, _uri);
                // The content's hash is checked against the reference by VerifiedReadStream (it is hashed once per read);
                // the trailer's copy is for tools that check a file alone.
                var recorded = BinaryPrimitives.ReadInt64LittleEndian(trailer);
                if (recorded != _length)
                    throw Damaged(_path, _uri, $"its trailer says {recorded} bytes, its chunks hold {_length}");
                return ValueTask.FromResult(0);
            }
            if (size < 0 || size > buffer.Length)
                throw Damaged(_path, _uri, $"chunk {_index} claims {size} bytes (chunks are at most {buffer.Length})");
            ReadExactly(_file, buffer.AsSpan(0, size), $"chunk {_index}", _path, _uri);
            Span<byte> stored = stackalloc byte[HashSize];
            ReadExactly(_file, stored, $"the hash of chunk {_index}", _path, _uri);
            if (!SHA256.HashData(buffer.AsSpan(0, size)).AsSpan().SequenceEqual(stored))
                throw Damaged(_path, _uri, $"chunk {_index} (bytes {_length}-{_length + size - 1} of the content) does not match its SHA-256");
            _length += size;
            _index++;
            return ValueTask.FromResult(size);
        }

        private static void ReadExactly(Stream file, Span<byte> buffer, string what, string path, string uri)
        {
            if (file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) < buffer.Length)
                throw Damaged(path, uri, $"it ends inside {what} (truncated)");
        }

        private static CheckpointStoreException Damaged(string path, string uri, string why) => new($"checkpoint {uri} is corrupt: file {path}: {why}");

        protected override void Dispose(bool disposing)
        {
            if (disposing) _file.Dispose();
            base.Dispose(disposing);
        }
    }
}

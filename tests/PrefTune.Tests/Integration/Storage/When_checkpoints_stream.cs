using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Tests.Integration.Servers;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>Content written and read in pieces, as the streamed store API sees it: seeded random blocks, regenerated to
/// compare what comes back without holding the whole checkpoint.</summary>
internal static class StreamedContent
{
    public const int Block = 8 * 1024 * 1024;

    public static Func<Stream, CancellationToken, Task> Writer(long length, int seed, IncrementalHash? hash = null) => async (stream, ct) =>
    {
        var random = new Random(seed);
        var block = new byte[Block];
        for (var left = length; left > 0; left -= block.Length)
        {
            var part = block.AsMemory(0, (int)Math.Min(left, block.Length));
            random.NextBytes(part.Span);
            hash?.AppendData(part.Span);
            await stream.WriteAsync(part, ct);
        }
    };

    /// <summary>Reads <paramref name="stream"/> to its end (so the store verifies it) and compares it with the seeded content.</summary>
    public static async Task AssertEqualAsync(Stream stream, long length, int seed)
    {
        var random = new Random(seed);
        var (expected, actual) = (new byte[Block], new byte[Block]);
        var offset = 0L;
        while (true)
        {
            var read = await stream.ReadAtLeastAsync(actual, actual.Length, throwOnEndOfStream: false);
            if (read == 0) break;
            random.NextBytes(expected.AsSpan(0, (int)Math.Min(length - offset, expected.Length)));
            Assert.True(actual.AsSpan(0, read).SequenceEqual(expected.AsSpan(0, read)), $"bytes differ in the block at {offset}");
            offset += read;
        }
        Assert.Equal(length, offset);
    }
}

public sealed class When_checkpoints_stream_through_a_directory(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("preftune-ckpt-stream-");
    private DirectoryCheckpointStore? _store;
    private DirectoryCheckpointStore Store => _store ??= new DirectoryCheckpointStore(_folder.FullName);

    [Fact]
    public async Task A_checkpoint_over_2_GiB_round_trips_with_its_hash_verified()
    {
        const long length = 2_200_000_000;   // more than any array or MemoryStream holds
        var free = new DriveInfo(_folder.FullName).AvailableFreeSpace;
        Assert.True(free > 3 * length, $"this test writes {length / 1e9:0.0} GB to {_folder.FullName}; only {free / 1e9:0.0} GB free there");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        var clock = Stopwatch.StartNew();
        var reference = await Store.PutAsync(9, StreamedContent.Writer(length, seed: 22, hash), CancellationToken.None);
        var put = clock.Elapsed;
        Assert.Equal(Convert.ToHexStringLower(hash.GetCurrentHash()), reference.Sha256);
        Assert.Equal(length, reference.Bytes);
        Assert.Equal(9, reference.Version);

        clock.Restart();
        await using (var stream = await Store.OpenReadAsync(reference, CancellationToken.None))
            await StreamedContent.AssertEqualAsync(stream, length, seed: 22);
        output.WriteLine($"{length / 1e9:0.00} GB: put {length / 1e6 / put.TotalSeconds:0} MB/s, read and verified {length / 1e6 / clock.Elapsed.TotalSeconds:0} MB/s");
    }

    [Fact]
    public async Task A_damaged_chunk_is_named_with_its_file_before_its_bytes_are_served()
    {
        var length = 3L * DirectoryCheckpointStore.ChunkSize + 5;
        var reference = await Store.PutAsync(1, StreamedContent.Writer(length, seed: 3), CancellationToken.None);
        var path = Path.Combine(_folder.FullName, reference.Sha256 + ".ckpt");
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
        {
            // header 16 bytes, then chunk 0 as [4 length][8 MiB][32 hash], then chunk 1's length: 100 bytes into chunk 1's data
            file.Position = 16 + (4 + DirectoryCheckpointStore.ChunkSize + 32) + 4 + 100;
            var b = file.ReadByte();
            file.Position--;
            file.WriteByte((byte)(b ^ 0x01));
        }

        await using var stream = await Store.OpenReadAsync(reference, CancellationToken.None);
        var first = new byte[DirectoryCheckpointStore.ChunkSize];
        Assert.Equal(first.Length, await stream.ReadAsync(first));   // chunk 0 is whole and served
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => stream.ReadAsync(new byte[16]).AsTask());
        Assert.Contains(reference.Uri, error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("chunk 1", error.Message);
        Assert.Contains("corrupt", error.Message);
    }

    [Fact]
    public async Task A_file_of_the_plain_format_still_reads_and_its_damage_is_found()
    {
        var bytes = new byte[5000];
        new Random(4).NextBytes(bytes);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var path = Path.Combine(_folder.FullName, hash + ".ckpt");
        await File.WriteAllBytesAsync(path, bytes);   // what stores before the chunked format wrote: the content itself
        var reference = new CheckpointRef { Version = 2, Sha256 = hash, Uri = $"file://{path}", Bytes = bytes.Length };

        Assert.Equal(bytes, await Store.GetAsync(reference, CancellationToken.None));

        bytes[4000] ^= 0xff;
        await File.WriteAllBytesAsync(path, bytes);
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(reference, CancellationToken.None));
        Assert.Contains(reference.Uri, error.Message);
        Assert.Contains("corrupt", error.Message);
    }

    [Fact]
    public async Task A_truncated_file_is_named()
    {
        var reference = await Store.PutAsync(1, StreamedContent.Writer(20_000, seed: 5), CancellationToken.None);
        var path = Path.Combine(_folder.FullName, reference.Sha256 + ".ckpt");
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
            file.SetLength(10_000);

        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(reference, CancellationToken.None));
        Assert.Contains(path, error.Message);
        Assert.Contains("truncated", error.Message);
    }

    public void Dispose() => _folder.Delete(recursive: true);
}

[Collection(PostgresCollection.Name)]
public sealed class When_checkpoints_stream_through_postgres(PostgresServer server, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private PostgresCheckpointStore _store = null!;

    [Fact]
    public async Task A_multi_chunk_checkpoint_round_trips_and_a_damaged_chunk_is_found()
    {
        var length = 5L * PostgresCheckpointStore.ChunkSize + 77;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var clock = Stopwatch.StartNew();
        var reference = await _store.PutAsync(4, StreamedContent.Writer(length, seed: 6, hash), CancellationToken.None);
        var put = clock.Elapsed;
        Assert.Equal(Convert.ToHexStringLower(hash.GetCurrentHash()), reference.Sha256);
        Assert.Equal(length, reference.Bytes);
        clock.Restart();
        await using (var stream = await _store.OpenReadAsync(reference, CancellationToken.None))
            await StreamedContent.AssertEqualAsync(stream, length, seed: 6);
        output.WriteLine($"{length / 1e6:0} MB: put {length / 1e6 / put.TotalSeconds:0} MB/s, read {length / 1e6 / clock.Elapsed.TotalSeconds:0} MB/s");

        Assert.Equal(0L, await ScalarAsync<long>($"select count(*) from {_schema}.checkpoint_chunks where sha256 like 'pending-%'"));
        Assert.Equal(6L, await ScalarAsync<long>($"select count(*) from {_schema}.checkpoint_chunks where sha256 = '{reference.Sha256}' and data_sha256 is not null"));
        await ScalarAsync<int>($"update {_schema}.checkpoint_chunks set data = set_byte(data, 5, (get_byte(data, 5) + 1) % 256) "
            + $"where sha256 = '{reference.Sha256}' and chunk = 3 returning 1");
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(async () =>
        {
            await using var stream = await _store.OpenReadAsync(reference, CancellationToken.None);
            await stream.CopyToAsync(Stream.Null);
        });
        Assert.Contains(reference.Uri, error.Message);
        Assert.Contains("chunk 3", error.Message);
    }

    [Fact]
    public async Task Tables_of_an_older_version_are_migrated_in_place_and_their_checkpoints_still_read()
    {
        // the layout before per-chunk hashes, holding one checkpoint of two chunks as that version wrote it
        var bytes = new byte[PostgresCheckpointStore.ChunkSize + 10];
        new Random(7).NextBytes(bytes);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync();
            await using (var create = new NpgsqlCommand($"""
                create schema {_schema};
                create table {_schema}.checkpoints (sha256 text primary key, bytes bigint not null, chunks integer not null,
                    created_at timestamptz not null default now());
                create table {_schema}.checkpoint_chunks (sha256 text not null, chunk integer not null, data bytea not null,
                    primary key (sha256, chunk));
                insert into {_schema}.checkpoints (sha256, bytes, chunks) values ('{hash}', {bytes.Length}, 2);
                """, connection))
                await create.ExecuteNonQueryAsync();
            for (var chunk = 0; chunk < 2; chunk++)
            {
                await using var insert = new NpgsqlCommand($"insert into {_schema}.checkpoint_chunks (sha256, chunk, data) values ($1, $2, $3)", connection);
                insert.Parameters.Add(new NpgsqlParameter { Value = hash });
                insert.Parameters.Add(new NpgsqlParameter { Value = chunk });
                insert.Parameters.Add(new NpgsqlParameter { Value = chunk == 0 ? bytes[..PostgresCheckpointStore.ChunkSize] : bytes[PostgresCheckpointStore.ChunkSize..] });
                await insert.ExecuteNonQueryAsync();
            }
        }
        var old = new CheckpointRef { Version = 1, Sha256 = hash, Uri = PostgresCheckpointStore.UriOf(hash), Bytes = bytes.Length };

        Assert.Equal(bytes, await _store.GetAsync(old, CancellationToken.None));
        var fresh = await _store.PutAsync(2, [1, 2, 3], CancellationToken.None);   // the migrated table takes new rows too
        Assert.Equal([1, 2, 3], await _store.GetAsync(fresh, CancellationToken.None));
        Assert.Equal(bytes, await _store.GetAsync(old, CancellationToken.None));
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public Task InitializeAsync()
    {
        _store = new PostgresCheckpointStore(server.ConnectionString, _schema);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        await server.DropSchemaAsync(_schema);
    }
}

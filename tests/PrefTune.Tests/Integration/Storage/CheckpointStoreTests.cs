using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Tests.Integration.Servers;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>What every checkpoint store must do; each store's class supplies one.</summary>
public abstract class CheckpointStoreContract(ITestOutputHelper output)
{
    protected abstract ICheckpointStore Store { get; }
    protected ITestOutputHelper Output => output;
    protected abstract string ExpectedUri(string hash);
    /// <summary>Flips one stored byte of <paramref name="reference"/>.</summary>
    protected abstract Task CorruptAsync(CheckpointRef reference);

    [Fact]
    public async Task Should_return_the_same_bytes_by_hash()
    {
        var bytes = Bytes(1000, seed: 1);
        var reference = await Store.PutAsync(3, bytes, CancellationToken.None);

        Assert.Equal(3, reference.Version);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), reference.Sha256);
        Assert.Equal(ExpectedUri(reference.Sha256), reference.Uri);
        Assert.Equal(1000, reference.Bytes);
        Assert.Equal(bytes, await Store.GetAsync(reference, CancellationToken.None));
    }

    [Fact]
    public async Task Should_store_the_same_content_once()
    {
        var bytes = Bytes(100, seed: 2);
        var first = await Store.PutAsync(1, bytes, CancellationToken.None);
        var second = await Store.PutAsync(2, bytes, CancellationToken.None);
        Assert.Equal(first.Sha256, second.Sha256);
        Assert.Equal(2, second.Version);
        Assert.Equal(bytes, await Store.GetAsync(second, CancellationToken.None));
    }

    [Fact]
    public async Task Should_round_trip_an_empty_checkpoint()
    {
        var reference = await Store.PutAsync(0, [], CancellationToken.None);
        Assert.Empty(await Store.GetAsync(reference, CancellationToken.None));
    }

    [Fact]
    public async Task Should_round_trip_a_checkpoint_larger_than_a_chunk()
    {
        var bytes = Bytes(PostgresCheckpointStore.ChunkSize * 2 + 12345, seed: 3);
        var clock = Stopwatch.StartNew();
        var reference = await Store.PutAsync(7, bytes, CancellationToken.None);
        var put = clock.Elapsed;
        clock.Restart();
        var back = await Store.GetAsync(reference, CancellationToken.None);
        output.WriteLine($"{GetType().Name}: {bytes.Length / 1e6:0.0} MB put in {put.TotalMilliseconds:0} ms, get in {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(bytes, back);
    }

    [Fact]
    public async Task Should_name_the_uri_of_an_absent_checkpoint()
    {
        var hash = new string('0', 64);
        var absent = new CheckpointRef { Version = 1, Sha256 = hash, Uri = ExpectedUri(hash), Bytes = 1 };
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(absent, CancellationToken.None));
        Assert.Contains(absent.Uri, error.Message);
    }

    [Fact]
    public async Task Should_name_the_uri_of_a_corrupt_checkpoint()
    {
        var reference = await Store.PutAsync(1, Bytes(5000, seed: 4), CancellationToken.None);
        await CorruptAsync(reference);
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(reference, CancellationToken.None));
        Assert.Contains(reference.Uri, error.Message);
        Assert.Contains("corrupt", error.Message);
    }

    [Fact]
    public async Task Should_reject_a_hash_that_is_not_one()
    {
        var bad = new CheckpointRef { Version = 1, Sha256 = "../../etc/passwd", Uri = "file:///etc/passwd", Bytes = 1 };
        var error = await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(bad, CancellationToken.None));
        Assert.Contains(bad.Uri, error.Message);
    }

    [Fact]
    public async Task Should_read_a_transient_copy_by_hash_until_its_run_releases_it()
    {
        var run = Guid.NewGuid();
        var bytes = Bytes(3000, seed: 5);
        var reference = await Store.PutTransientAsync(run, 3, bytes, CancellationToken.None);

        Assert.Equal(bytes, await Store.GetAsync(reference, CancellationToken.None));
        var listed = Assert.Single(await Inventory.ListAsync(CancellationToken.None), c => c.Sha256 == reference.Sha256);
        Assert.Equal((run, 3), (listed.TransientFor, listed.Version));
        Assert.InRange(listed.Bytes, 3000L, 3000L + 200);   // what it takes where stored: a file adds its chunk headers and hashes
        await Store.ReleaseTransientAsync(run, 3, CancellationToken.None);             // only versions below 3
        Assert.True(await Store.ContainsAsync(reference.Sha256, CancellationToken.None));
        await Store.ReleaseTransientAsync(run, 4, CancellationToken.None);
        Assert.False(await Store.ContainsAsync(reference.Sha256, CancellationToken.None));
        await Assert.ThrowsAsync<CheckpointStoreException>(() => Store.GetAsync(reference, CancellationToken.None));
    }

    [Fact]
    public async Task Should_release_a_runs_own_copies_only_and_delete_exactly_the_listed_ones()
    {
        var (first, second) = (Guid.NewGuid(), Guid.NewGuid());
        var shared = Bytes(2000, seed: 6);
        var transient = await Store.PutTransientAsync(first, 1, shared, CancellationToken.None);
        await Store.PutTransientAsync(second, 1, shared, CancellationToken.None);     // another run, the same weights
        var kept = await Store.PutAsync(1, Bytes(2000, seed: 7), CancellationToken.None);
        var other = await Store.PutAsync(2, Bytes(2000, seed: 8), CancellationToken.None);

        await Store.ReleaseTransientAsync(first, int.MaxValue, CancellationToken.None);
        Assert.Equal(shared, await Store.GetAsync(transient, CancellationToken.None)); // the second run's copy
        Assert.Equal([second], (await Inventory.ListAsync(CancellationToken.None)).Where(c => c.Sha256 == transient.Sha256).Select(c => c.TransientFor));

        var listed = await Inventory.ListAsync(CancellationToken.None);
        await Inventory.DeleteAsync(listed.Where(c => c.Sha256 == kept.Sha256 || c.TransientFor == second).ToList(), CancellationToken.None);
        Assert.False(await Store.ContainsAsync(kept.Sha256, CancellationToken.None));
        Assert.False(await Store.ContainsAsync(transient.Sha256, CancellationToken.None));
        Assert.True(await Store.ContainsAsync(other.Sha256, CancellationToken.None));
    }

    private ICheckpointInventory Inventory => (ICheckpointInventory)Store;

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

[Collection(PostgresCollection.Name)]
public sealed class When_checkpoints_are_kept_in_postgres(PostgresServer server, ITestOutputHelper output)
    : CheckpointStoreContract(output), IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private PostgresCheckpointStore _store = null!;

    protected override ICheckpointStore Store => _store;
    protected override string ExpectedUri(string hash) => $"pg://sha256/{hash}";

    protected override async Task CorruptAsync(CheckpointRef reference)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var update = new NpgsqlCommand(
            $"update {_schema}.checkpoint_chunks set data = set_byte(data, 10, (get_byte(data, 10) + 1) % 256) where sha256 = $1 and chunk = 0",
            connection);
        update.Parameters.Add(new NpgsqlParameter { Value = reference.Sha256 });
        Assert.Equal(1, await update.ExecuteNonQueryAsync());
    }

    [Fact]
    public async Task Should_split_large_checkpoints_into_chunks_of_at_most_8_MB()
    {
        var bytes = new byte[PostgresCheckpointStore.ChunkSize * 2 + 1];
        var reference = await _store.PutAsync(1, bytes, CancellationToken.None);
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var sizes = new NpgsqlCommand(
            $"select count(*), max(length(data)) from {_schema}.checkpoint_chunks where sha256 = $1", connection);
        sizes.Parameters.Add(new NpgsqlParameter { Value = reference.Sha256 });
        await using var reader = await sizes.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(3, reader.GetInt64(0));
        Assert.Equal(PostgresCheckpointStore.ChunkSize, reader.GetInt32(1));
    }

    [Fact]
    public void Should_be_what_the_postgres_setting_names()
    {
        using var store = (PostgresCheckpointStore)CheckpointStoreFactory.Create("postgres", server.ConnectionString, _schema);
        Assert.Throws<ArgumentException>(() => CheckpointStoreFactory.Create("postgres", null));
    }

    [Fact]
    public async Task A_multi_chunk_checkpoint_round_trips_and_a_damaged_chunk_is_found()
    {
        var length = 5L * PostgresCheckpointStore.ChunkSize + 77;
        var reference = await StreamedContent.RoundTripAsync(_store, length, seed: 6, Output);

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

public sealed class When_checkpoints_are_kept_in_a_directory(ITestOutputHelper output) : CheckpointStoreContract(output), IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("preftune-ckpt-");
    private DirectoryCheckpointStore? _store;

    protected override ICheckpointStore Store => _store ??= (DirectoryCheckpointStore)CheckpointStoreFactory.Create(_folder.FullName, null);
    protected override string ExpectedUri(string hash) => $"file://{Path.Combine(_folder.FullName, hash + ".ckpt")}";

    protected override async Task CorruptAsync(CheckpointRef reference)
    {
        var path = new Uri(reference.Uri).LocalPath;
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[10] ^= 0xff;
        await File.WriteAllBytesAsync(path, bytes);
    }

    [Fact]
    public async Task Should_leave_no_temporary_files()
    {
        await Store.PutAsync(1, [1, 2, 3], CancellationToken.None);
        var file = Assert.Single(_folder.GetFiles());
        Assert.EndsWith(".ckpt", file.Name);
    }

    [Fact]
    public async Task A_checkpoint_over_2_GiB_round_trips_with_its_hash_verified()
    {
        const long length = 2_200_000_000;   // more than any array or MemoryStream holds
        var free = new DriveInfo(_folder.FullName).AvailableFreeSpace;
        Assert.True(free > 3 * length, $"this test writes {length / 1e9:0.0} GB to {_folder.FullName}; only {free / 1e9:0.0} GB free there");
        await StreamedContent.RoundTripAsync(Store, length, seed: 22, Output);
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

    /// <summary>Four tensors of 550 MB: no array could hold the state dict, so this passes only if it streams both ways.</summary>
    private sealed class LargeModel : PrefTune.Training.Policies.PolicyModel
    {
        public LargeModel() : base("large")
        {
            for (var i = 0; i < 4; i++)
                register_parameter($"w{i}", new TorchSharp.Modules.Parameter(TorchSharp.torch.zeros(137_500_000), requires_grad: false));
        }
    }

    [Fact]
    public async Task A_model_of_over_2_GiB_streams_its_weights_into_the_store_and_back()
    {
        var free = new DriveInfo(_folder.FullName).AvailableFreeSpace;
        Assert.True(free > 6_600_000_000, $"this test writes 2.2 GB to {_folder.FullName}; only {free / 1e9:0.0} GB free there");
        using var model = new LargeModel();
        var sums = new List<double>();
        using (TorchSharp.torch.no_grad())
            foreach (var parameter in model.parameters())
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                using var generator = new TorchSharp.torch.Generator((ulong)sums.Count + 1);
                parameter.uniform_(-1, 1, generator);
                sums.Add(parameter.to_type(TorchSharp.torch.ScalarType.Float64).sum().item<double>());
            }

        var clock = Stopwatch.StartNew();
        var reference = await Store.PutAsync(1, model.WriteWeightsAsync, CancellationToken.None);
        var put = clock.Elapsed;
        Assert.True(reference.Bytes > 2_200_000_000, $"{reference.Bytes} bytes");
        using (TorchSharp.torch.no_grad())
            foreach (var parameter in model.parameters())
                parameter.zero_();
        clock.Restart();
        await Store.ReadAsync(reference, model.LoadWeights, CancellationToken.None);   // the hash is checked at the stream's end
        Output.WriteLine($"{reference.Bytes / 1e9:0.00} GB of weights: saved into the store at {reference.Bytes / 1e6 / put.TotalSeconds:0} MB/s, "
            + $"loaded back at {reference.Bytes / 1e6 / clock.Elapsed.TotalSeconds:0} MB/s");

        var loaded = new List<double>();
        foreach (var parameter in model.parameters())
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            loaded.Add(parameter.to_type(TorchSharp.torch.ScalarType.Float64).sum().item<double>());
        }
        Assert.Equal(sums, loaded);
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

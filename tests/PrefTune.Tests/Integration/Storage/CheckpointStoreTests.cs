using System.Diagnostics;
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

    public void Dispose() => _folder.Delete(recursive: true);
}

using Npgsql;
using NpgsqlTypes;
using Polly;
using Polly.Timeout;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// Checkpoints in PostgreSQL beside the event store: every machine that reaches the database reaches the
/// weights. A checkpoint is a header row plus bytea chunks of at most <see cref="ChunkSize"/> bytes, so
/// hundreds of MB never travel as one value; the header is written last, in the same transaction, so a
/// checkpoint is either whole or absent.
/// </summary>
public sealed class PostgresCheckpointStore : ICheckpointStore, IAsyncDisposable, IDisposable
{
    /// <summary>Largest chunk row.</summary>
    public const int ChunkSize = 8 * 1024 * 1024;

    private readonly NpgsqlDataSource _dataSource;
    private readonly ResiliencePipeline _pipeline;
    private readonly string _schema;
    private readonly SemaphoreSlim _tablesReady = new(1, 1);
    private bool _tablesCreated;

    public PostgresCheckpointStore(string connectionString, string schema = "preftune", StorageResilienceOptions? resilience = null)
    {
        if (string.IsNullOrWhiteSpace(schema) || !schema.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            throw new ArgumentException($"checkpoints: schema '{schema}' must be letters, digits and underscores");
        _schema = schema;
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _pipeline = (resilience ?? StorageResilienceOptions.Default).BuildPipeline();
    }

    private string Headers => $"{_schema}.checkpoints";
    private string Chunks => $"{_schema}.checkpoint_chunks";

    public static string UriOf(string hash) => $"pg://sha256/{hash}";

    public async Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Of(bytes);
        var reference = new CheckpointRef { Version = version, Sha256 = hash, Uri = UriOf(hash), Bytes = bytes.LongLength };
        await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            if (await HeaderAsync(connection, hash, ct) is not null) return true; // same content, already stored
            await using var transaction = await connection.BeginTransactionAsync(ct);
            var chunks = 0;
            for (var offset = 0L; offset < bytes.LongLength || chunks == 0; offset += ChunkSize, chunks++)
            {
                var length = (int)Math.Min(ChunkSize, bytes.LongLength - offset);
                await using var insert = new NpgsqlCommand(
                    $"insert into {Chunks} (sha256, chunk, data) values ($1, $2, $3) on conflict do nothing", connection, transaction);
                insert.Parameters.Add(new NpgsqlParameter { Value = hash });
                insert.Parameters.Add(new NpgsqlParameter { Value = chunks });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bytea, Value = new ArraySegment<byte>(bytes, (int)offset, length) });
                await insert.ExecuteNonQueryAsync(ct);
            }
            await using (var header = new NpgsqlCommand(
                $"insert into {Headers} (sha256, bytes, chunks) values ($1, $2, $3) on conflict do nothing", connection, transaction))
            {
                header.Parameters.Add(new NpgsqlParameter { Value = hash });
                header.Parameters.Add(new NpgsqlParameter { Value = bytes.LongLength });
                header.Parameters.Add(new NpgsqlParameter { Value = chunks });
                await header.ExecuteNonQueryAsync(ct);
            }
            await transaction.CommitAsync(ct);
            return true;
        }, cancellationToken);
        return reference;
    }

    public async Task<byte[]> GetAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Validate(reference);
        var bytes = await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            var (length, chunks) = await HeaderAsync(connection, hash, ct)
                ?? throw new CheckpointStoreException($"checkpoint {reference.Uri} not found in {Headers}");
            var buffer = new byte[length];
            var offset = 0;
            var seen = 0;
            await using var select = new NpgsqlCommand($"select data from {Chunks} where sha256 = $1 order by chunk", connection);
            select.Parameters.Add(new NpgsqlParameter { Value = hash });
            await using var reader = await select.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
            while (await reader.ReadAsync(ct))
            {
                await using var chunk = await reader.GetStreamAsync(0, ct);
                int read;
                while (offset < buffer.Length && (read = await chunk.ReadAsync(buffer.AsMemory(offset), ct)) > 0)
                    offset += read;
                if (await chunk.ReadAsync(new byte[1], ct) > 0)
                    throw new CheckpointStoreException($"checkpoint {reference.Uri} is corrupt: its chunks hold more than the {length} bytes its header says");
                seen++;
            }
            if (seen != chunks || offset != length)
                throw new CheckpointStoreException(
                    $"checkpoint {reference.Uri} is corrupt: {seen} of {chunks} chunks and {offset} of {length} bytes present");
            return buffer;
        }, cancellationToken);
        return CheckpointHash.Verify(reference, bytes);
    }

    private async Task<(int Length, int Chunks)?> HeaderAsync(NpgsqlConnection connection, string hash, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"select bytes, chunks from {Headers} where sha256 = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = hash });
        await using var reader = await command.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        return (checked((int)reader.GetInt64(0)), reader.GetInt32(1));
    }

    private async Task EnsureTablesAsync(CancellationToken ct)
    {
        if (_tablesCreated) return;
        await _tablesReady.WaitAsync(ct);
        try
        {
            if (_tablesCreated) return;
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            await using var transaction = await connection.BeginTransactionAsync(ct);
            // concurrent "create ... if not exists" can still collide in the catalog: serialize them
            await using var create = new NpgsqlCommand($"""
                select pg_advisory_xact_lock(hashtext('preftune.checkpoints.ddl'));
                create schema if not exists {_schema};
                create table if not exists {Headers} (
                    sha256 text primary key,
                    bytes bigint not null,
                    chunks integer not null,
                    created_at timestamptz not null default now());
                create table if not exists {Chunks} (
                    sha256 text not null,
                    chunk integer not null,
                    data bytea not null,
                    primary key (sha256, chunk));
                """, connection, transaction);
            await create.ExecuteNonQueryAsync(ct);
            await transaction.CommitAsync(ct);
            _tablesCreated = true;
        }
        finally
        {
            _tablesReady.Release();
        }
    }

    private async Task<T> RunAsync<T>(CheckpointRef reference, Func<CancellationToken, ValueTask<T>> action, CancellationToken ct)
    {
        try
        {
            return await _pipeline.ExecuteAsync(action, ct);
        }
        catch (TimeoutRejectedException e)
        {
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: the database did not answer within {e.Timeout.TotalSeconds:0.#} s", e);
        }
        catch (NpgsqlException e)
        {
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: {e.Message}", e);
        }
    }

    public ValueTask DisposeAsync()
    {
        _tablesReady.Dispose();
        return _dataSource.DisposeAsync();
    }

    public void Dispose()
    {
        _tablesReady.Dispose();
        _dataSource.Dispose();
    }
}

/// <summary>Builds the checkpoint store a PrefTune setting names.</summary>
public static class CheckpointStoreFactory
{
    /// <summary>
    /// <paramref name="setting"/> "postgres" (tables in <paramref name="schema"/> of <paramref name="connectionString"/>'s
    /// database) or a directory path (a file:// URI works too).
    /// </summary>
    public static ICheckpointStore Create(string setting, string? connectionString, string schema = "preftune",
        StorageResilienceOptions? resilience = null)
    {
        if (string.IsNullOrWhiteSpace(setting) || setting.Trim().Equals("postgres", StringComparison.OrdinalIgnoreCase))
        {
            if (string.IsNullOrWhiteSpace(connectionString))
                throw new ArgumentException("checkpoints: \"postgres\" needs a database connection string");
            return new PostgresCheckpointStore(connectionString, schema, resilience);
        }
        var path = setting.Trim();
        if (path.StartsWith("file://", StringComparison.OrdinalIgnoreCase)) path = new Uri(path).LocalPath;
        return new DirectoryCheckpointStore(path, resilience);
    }
}

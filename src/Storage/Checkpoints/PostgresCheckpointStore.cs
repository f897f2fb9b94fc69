using Npgsql;
using NpgsqlTypes;
using Polly;
using Polly.Timeout;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>
/// Checkpoints in PostgreSQL beside the event store: every machine that reaches the database reaches the
/// weights. A checkpoint is a header row plus bytea chunks of at most <see cref="ChunkSize"/> bytes, each with
/// its SHA-256 (data_sha256; rows written before it have none), streamed in and out, so no checkpoint is ever
/// one value or one array; the header is written last, in the same transaction, so a checkpoint is either
/// whole or absent. Kept checkpoints live in <c>checkpoints</c>; a run's transient
/// copies in <c>checkpoint_transient</c>, keyed by run as well, and unlogged: they cost no write-ahead log,
/// and a crash of PostgreSQL empties them, which is safe because a run re-trains them from its last kept one.
/// </summary>
public sealed class PostgresCheckpointStore : ICheckpointStore, ICheckpointInventory, IAsyncDisposable, IDisposable
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
    private string TransientHeaders => $"{_schema}.checkpoint_transient";
    private string TransientChunks => $"{_schema}.checkpoint_transient_chunks";

    public static string UriOf(string hash) => $"pg://sha256/{hash}";

    public Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        PutAsync(null, version, write, cancellationToken);

    public Task<CheckpointRef> PutTransientAsync(Guid runId, int version, Func<Stream, CancellationToken, Task> write,
        CancellationToken cancellationToken) =>
        PutAsync(runId, version, write, cancellationToken);

    /// <summary>
    /// Streams the content as chunk rows under a pending key (the hash is known only at the end), then, in the same
    /// transaction, renames them to the hash and writes the header: readers see the whole checkpoint or nothing, and a
    /// put that fails or dies leaves nothing (its transaction rolls back). Same content already stored: rolled back too.
    /// </summary>
    private async Task<CheckpointRef> PutAsync(Guid? run, int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var (headers, chunkTable) = run is not null ? (TransientHeaders, TransientChunks) : (Headers, Chunks);
        var store = new CheckpointRef { Version = version, Sha256 = "", Uri = $"pg://{headers}", Bytes = 0 };
        return await RunAsync(store, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            await using var transaction = await connection.BeginTransactionAsync(ct);
            var pending = $"pending-{Guid.NewGuid():N}";
            var chunks = new ChunkWriter(connection, transaction, chunkTable, run, pending);
            var (hash, length) = await CheckpointHash.WriteAsync(chunks, write, ct);
            await chunks.CompleteAsync(sync: false, ct);
            var count = chunks.Chunks;
            var reference = new CheckpointRef { Version = version, Sha256 = hash, Uri = UriOf(hash), Bytes = length };
            var runFilter = run is null ? "" : " and run_id = $3";
            // per content: a concurrent put of the same bytes commits first and is seen below, or waits; never a key collision
            // (one statement per command: positional parameters allow no more)
            await using (var lockContent = new NpgsqlCommand("select pg_advisory_xact_lock(hashtext($1))", connection, transaction))
            {
                lockContent.Parameters.Add(new NpgsqlParameter { Value = hash });
                await lockContent.ExecuteNonQueryAsync(ct);
            }
            await using (var existing = new NpgsqlCommand($"select 1 from {headers} where sha256 = $1" + (run is null ? "" : " and run_id = $2"),
                connection, transaction))
            {
                existing.Parameters.Add(new NpgsqlParameter { Value = hash });
                if (run is not null) existing.Parameters.Add(new NpgsqlParameter { Value = run.Value });
                if (await existing.ExecuteScalarAsync(ct) is not null)
                {
                    await transaction.RollbackAsync(ct);   // same content, already stored: drop the pending chunks
                    return reference;
                }
            }
            await using (var rename = new NpgsqlCommand($"update {chunkTable} set sha256 = $1 where sha256 = $2" + runFilter, connection, transaction))
            {
                rename.Parameters.Add(new NpgsqlParameter { Value = hash });
                rename.Parameters.Add(new NpgsqlParameter { Value = pending });
                if (run is not null) rename.Parameters.Add(new NpgsqlParameter { Value = run.Value });
                rename.CommandTimeout = 0;   // a few hundred rows; their data is not rewritten (unchanged TOAST values are kept)
                await rename.ExecuteNonQueryAsync(ct);
            }
            await using (var header = new NpgsqlCommand(run is null
                ? $"insert into {headers} (sha256, bytes, chunks) values ($1, $2, $3)"
                : $"insert into {headers} (run_id, sha256, bytes, chunks, version) values ($4, $1, $2, $3, $5)",
                connection, transaction))
            {
                header.Parameters.Add(new NpgsqlParameter { Value = hash });
                header.Parameters.Add(new NpgsqlParameter { Value = length });
                header.Parameters.Add(new NpgsqlParameter { Value = count });
                if (run is not null)
                {
                    header.Parameters.Add(new NpgsqlParameter { Value = run.Value });
                    header.Parameters.Add(new NpgsqlParameter { Value = version });
                }
                await header.ExecuteNonQueryAsync(ct);
            }
            await transaction.CommitAsync(ct);
            return reference;
        }, cancellationToken);
    }

    public async Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Validate(reference);
        return await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            var connection = await _dataSource.OpenConnectionAsync(ct);
            try
            {
                // one snapshot for header and chunks: a transient copy released meanwhile is either wholly there or absent
                var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
                var (length, chunks, run) = await HeaderAsync(connection, hash, ct)
                    ?? throw new CheckpointStoreException($"checkpoint {reference.Uri} not found in {Headers} (nor as a transient copy: "
                        + "only versions kept every checkpoint_every steps stay stored)");
                var select = new NpgsqlCommand(run is null
                    ? $"select chunk, data_sha256, data from {Chunks} where sha256 = $1 order by chunk"
                    : $"select chunk, data_sha256, data from {TransientChunks} where sha256 = $1 and run_id = $2 order by chunk", connection, transaction);
                select.Parameters.Add(new NpgsqlParameter { Value = hash });
                if (run is { } owner) select.Parameters.Add(new NpgsqlParameter { Value = owner });
                select.CommandTimeout = 0;   // the rows stream for as long as the consumer reads
                var reader = await select.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
                var chunkReader = new ChunkReader(connection, reader, reference, length, chunks);
                return (Stream)new VerifiedReadStream(chunkReader, reference,
                    e => e is NpgsqlException or IOException ? new CheckpointStoreException($"checkpoint {reference.Uri}: {e.Message}", e) : e);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }, cancellationToken);
    }

    public async Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken)
    {
        var reference = new CheckpointRef { Version = 0, Sha256 = sha256, Uri = UriOf(sha256), Bytes = 0 };
        CheckpointHash.Validate(reference);
        return await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            return await HeaderAsync(connection, sha256, ct) is not null;
        }, cancellationToken);
    }

    public async Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken)
    {
        var reference = new CheckpointRef { Version = belowVersion, Sha256 = "", Uri = $"pg://transient/{runId}", Bytes = 0 };
        await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            await using var delete = new NpgsqlCommand($"""
                with gone as (delete from {TransientHeaders} where run_id = $1 and version < $2 returning sha256)
                delete from {TransientChunks} c using gone where c.run_id = $1 and c.sha256 = gone.sha256
                """, connection);
            delete.Parameters.Add(new NpgsqlParameter { Value = runId });
            delete.Parameters.Add(new NpgsqlParameter { Value = belowVersion });
            if (await delete.ExecuteNonQueryAsync(ct) == 0) return true;
            // Deleted rows are reusable space only once vacuumed; autovacuum comes too late for a copy per step, and the
            // table would grow by every version meanwhile. A plain vacuum of a table this small takes milliseconds.
            await using var vacuum = new NpgsqlCommand($"vacuum {TransientHeaders}, {TransientChunks}", connection);
            await vacuum.ExecuteNonQueryAsync(ct);
            return true;
        }, cancellationToken);
    }

    public async Task<IReadOnlyList<StoredCheckpoint>> ListAsync(CancellationToken cancellationToken)
    {
        var reference = new CheckpointRef { Version = 0, Sha256 = "", Uri = $"pg://{Headers}", Bytes = 0 };
        return await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            await using var select = new NpgsqlCommand($"""
                select sha256, bytes, null::uuid, null::integer, created_at from {Headers}
                union all
                select sha256, bytes, run_id, version, created_at from {TransientHeaders}
                """, connection);
            await using var reader = await select.ExecuteReaderAsync(ct);
            var copies = new List<StoredCheckpoint>();
            while (await reader.ReadAsync(ct))
                copies.Add(new StoredCheckpoint(reader.GetString(0), reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetGuid(2),
                    reader.IsDBNull(3) ? null : reader.GetInt32(3), reader.GetFieldValue<DateTimeOffset>(4)));
            return (IReadOnlyList<StoredCheckpoint>)copies;
        }, cancellationToken);
    }

    /// <summary>Deletes the copies, then rewrites the checkpoint tables (VACUUM FULL: a short exclusive lock) so that the
    /// data folder shrinks; a plain delete would only let PostgreSQL reuse the space.</summary>
    public async Task DeleteAsync(IReadOnlyCollection<StoredCheckpoint> copies, CancellationToken cancellationToken)
    {
        var reference = new CheckpointRef { Version = 0, Sha256 = "", Uri = $"pg://{Headers}", Bytes = 0 };
        await RunAsync(reference, async ct =>
        {
            await EnsureTablesAsync(ct);
            await using var connection = await _dataSource.OpenConnectionAsync(ct);
            var kept = copies.Where(c => c.TransientFor is null).Select(c => c.Sha256).ToArray();
            var transient = copies.Where(c => c.TransientFor is not null).ToArray();
            await using (var transaction = await connection.BeginTransactionAsync(ct))
            {
                // one statement per command: positional parameters allow no more
                foreach (var table in new[] { Headers, Chunks })
                {
                    await using var deleteKept = new NpgsqlCommand($"delete from {table} where sha256 = any($1)", connection, transaction);
                    deleteKept.Parameters.Add(new NpgsqlParameter { Value = kept });
                    await deleteKept.ExecuteNonQueryAsync(ct);
                }
                foreach (var table in new[] { TransientHeaders, TransientChunks })
                {
                    await using var deleteTransient = new NpgsqlCommand($"""
                        delete from {table} t using unnest($1::uuid[], $2::text[]) as gone(run_id, sha256)
                            where t.run_id = gone.run_id and t.sha256 = gone.sha256
                        """, connection, transaction);
                    deleteTransient.Parameters.Add(new NpgsqlParameter { Value = transient.Select(c => c.TransientFor!.Value).ToArray() });
                    deleteTransient.Parameters.Add(new NpgsqlParameter { Value = transient.Select(c => c.Sha256).ToArray() });
                    await deleteTransient.ExecuteNonQueryAsync(ct);
                }
                await transaction.CommitAsync(ct);
            }
            await using var vacuum = new NpgsqlCommand($"vacuum full {Headers}, {Chunks}, {TransientHeaders}, {TransientChunks}", connection);
            vacuum.CommandTimeout = 0;
            await vacuum.ExecuteNonQueryAsync(ct);
            return true;
        }, cancellationToken);
    }

    /// <summary>The kept copy's header, else any run's transient copy's (with that run).</summary>
    private async Task<(long Length, int Chunks, Guid? Run)?> HeaderAsync(NpgsqlConnection connection, string hash, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"""
            select bytes, chunks, null::uuid, 0 from {Headers} where sha256 = $1
            union all
            select bytes, chunks, run_id, 1 from {TransientHeaders} where sha256 = $1
            order by 4 limit 1
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = hash });
        await using var reader = await command.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        return (reader.GetInt64(0), reader.GetInt32(1), reader.IsDBNull(2) ? null : reader.GetGuid(2));
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
                create unlogged table if not exists {TransientHeaders} (
                    run_id uuid not null,
                    sha256 text not null,
                    version integer not null,
                    bytes bigint not null,
                    chunks integer not null,
                    created_at timestamptz not null default now(),
                    primary key (run_id, sha256));
                create index if not exists checkpoint_transient_sha256 on {TransientHeaders} (sha256);
                create unlogged table if not exists {TransientChunks} (
                    run_id uuid not null,
                    sha256 text not null,
                    chunk integer not null,
                    data bytea not null,
                    primary key (run_id, sha256, chunk));
                -- since streamed checkpoints: each chunk's SHA-256 (older rows have none; the content hash still checks them)
                alter table {Chunks} add column if not exists data_sha256 bytea;
                alter table {TransientChunks} add column if not exists data_sha256 bytea;
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

/// <summary>Write-only: inserts every <see cref="PostgresCheckpointStore.ChunkSize"/> bytes as one chunk row (with the chunk's
/// SHA-256) under the pending key.</summary>
internal sealed class ChunkWriter(NpgsqlConnection connection, NpgsqlTransaction transaction, string table, Guid? run, string key)
    : ChunkingWriteStream(PostgresCheckpointStore.ChunkSize)
{
    protected override async ValueTask WriteChunkAsync(ArraySegment<byte> chunk, bool sync, CancellationToken ct)
    {
        await using var insert = new NpgsqlCommand(run is null
            ? $"insert into {table} (sha256, chunk, data_sha256, data) values ($1, $2, $3, $4)"
            : $"insert into {table} (sha256, chunk, data_sha256, data, run_id) values ($1, $2, $3, $4, $5)", connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter { Value = key });
        insert.Parameters.Add(new NpgsqlParameter { Value = Chunks });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bytea, Value = System.Security.Cryptography.SHA256.HashData(chunk) });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bytea, Value = chunk });
        if (run is not null) insert.Parameters.Add(new NpgsqlParameter { Value = run.Value });
        if (sync) insert.ExecuteNonQuery();
        else await insert.ExecuteNonQueryAsync(ct);
    }
}

/// <summary>Read-only: a checkpoint's chunk rows in order (owns the connection and its reader), each checked against its
/// SHA-256 before it is served where the row has one; the count and length against the header at the end.</summary>
internal sealed class ChunkReader(NpgsqlConnection connection, NpgsqlDataReader reader, CheckpointRef reference, long length, int chunks)
    : ChunkedReadStream(PostgresCheckpointStore.ChunkSize)
{
    private int _seen;
    private long _total;
    private bool _ended;

    protected override async ValueTask<int> NextChunkAsync(byte[] buffer, bool sync, CancellationToken ct)
    {
        while (true)
        {
            if (_ended) return 0;
            if (!(sync ? reader.Read() : await reader.ReadAsync(ct)))
            {
                _ended = true;
                if (_seen != chunks || _total != length)
                    throw new CheckpointStoreException(
                        $"checkpoint {reference.Uri} is corrupt: {_seen} of {chunks} chunks and {_total} of {length} bytes present");
                return 0;
            }
            var index = reader.GetInt32(0);
            var expected = reader.IsDBNull(1) ? null : reader.GetFieldValue<byte[]>(1);
            if (index != _seen)
                throw new CheckpointStoreException($"checkpoint {reference.Uri} is corrupt: chunk {_seen} is missing (next is {index})");
            var size = 0;
            await using (var data = sync ? reader.GetStream(2) : await reader.GetStreamAsync(2, ct))
            {
                int read;
                while ((read = sync ? data.Read(buffer.AsSpan(size)) : await data.ReadAsync(buffer.AsMemory(size), ct)) > 0)
                {
                    size += read;
                    if (size == buffer.Length && (sync ? data.Read(new byte[1]) : await data.ReadAsync(new byte[1], ct)) > 0)
                        throw new CheckpointStoreException($"checkpoint {reference.Uri} is corrupt: chunk {index} is larger than {buffer.Length} bytes");
                }
            }
            if (expected is not null && !System.Security.Cryptography.SHA256.HashData(buffer.AsSpan(0, size)).AsSpan().SequenceEqual(expected))
                throw new CheckpointStoreException($"checkpoint {reference.Uri} is corrupt: chunk {index} (bytes {_total}-{_total + size - 1}) "
                    + "does not match its SHA-256");
            _seen++;
            _total += size;
            if (size > 0) return size;   // an empty checkpoint's one empty chunk: look for the end
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            reader.Dispose();
            connection.Dispose();   // its read-only transaction ends with it
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await reader.DisposeAsync();
        await connection.DisposeAsync();
        await base.DisposeAsync();
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

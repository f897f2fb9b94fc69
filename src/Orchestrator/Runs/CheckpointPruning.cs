using Marten;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Runs;

/// <summary>What `preftune prune` would remove and what it keeps, copy by copy.</summary>
public sealed record PrunePlan(IReadOnlyList<StoredCheckpoint> Remove, IReadOnlyList<StoredCheckpoint> Keep)
{
    public long FreedBytes => Remove.Sum(c => c.Bytes);
    public long KeptBytes => Keep.Sum(c => c.Bytes);
}

/// <summary>
/// `preftune prune`: removes the stored checkpoints no run needs (<see cref="CheckpointRetention.Needed"/>), decided from
/// the recorded events alone. Only weights and trainer states go, which replay re-trains from the recorded batches; no
/// event is ever touched. Left alone: every kept checkpoint, the last checkpoint of every unfinished run, the transient
/// copies of a run that may still be going, and anything written in the last <see cref="RecentMargin"/>.
/// </summary>
public static class CheckpointPruning
{
    /// <summary>A live run's Learner stores a checkpoint a moment before its Orchestrator records it (within a stage
    /// timeout); a copy this young that no event names yet may be that one.</summary>
    public static readonly TimeSpan RecentMargin = TimeSpan.FromMinutes(10);

    public static PrunePlan Plan(IReadOnlyList<RecordedRun> runs, IReadOnlyList<StoredCheckpoint> stored, DateTimeOffset now)
    {
        var byId = runs.ToDictionary(r => r.Started.RunId);
        var needed = runs.SelectMany(CheckpointRetention.Needed).ToHashSet();
        bool Recent(StoredCheckpoint copy) => now - copy.CreatedAt < RecentMargin;
        bool Keeps(StoredCheckpoint copy) => copy.TransientFor is not { } owner
            ? needed.Contains(copy.Sha256) || Recent(copy)
            : byId.TryGetValue(owner, out var run)
                ? CheckpointRetention.MayBeLive(run) || CheckpointRetention.Needed(run).Contains(copy.Sha256)
                : Recent(copy); // an exact replay's own copies, or a run whose stream is gone

        var keep = stored.Where(Keeps).ToList();
        // A needed hash whose only copies are another run's transient ones keeps one of them.
        var covered = keep.Select(c => c.Sha256).ToHashSet();
        foreach (var orphan in stored.Where(c => needed.Contains(c.Sha256) && !covered.Contains(c.Sha256)).DistinctBy(c => c.Sha256))
            keep.Add(orphan);
        var kept = keep.ToHashSet();
        return new PrunePlan(stored.Where(c => !kept.Contains(c)).ToList(), keep);
    }

    /// <summary>Every recorded run, from its own stream.</summary>
    public static async Task<IReadOnlyList<RecordedRun>> LoadRunsAsync(IDocumentStore store, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var ids = await session.Query<RunSummary>().Select(r => r.Id).ToListAsync(ct);
        var runs = new List<RecordedRun>();
        foreach (var id in ids)
        {
            var events = (await session.Events.FetchStreamAsync(id, token: ct)).Select(e => e.Data).ToList();
            if (events.FirstOrDefault() is RunStarted)
                runs.Add(RecordedRun.From(events));
        }
        return runs;
    }

    /// <summary>Disk use per run (see the overload) with the checkpoint store <paramref name="options"/> names.</summary>
    public static async Task<IReadOnlyDictionary<Guid, long>> DiskUsageAsync(ServiceDefaults.PrefTuneOptions options, IDocumentStore store, CancellationToken ct)
    {
        var checkpoints = CheckpointStoreFactory.Create(options.Checkpoints, options.Database, options.Schema);
        try
        {
            var stored = checkpoints is ICheckpointInventory inventory ? await inventory.ListAsync(ct) : [];
            return await DiskUsageAsync(store, options.Database!, options.Schema, stored, ct);
        }
        finally
        {
            (checkpoints as IDisposable)?.Dispose();
        }
    }

    /// <summary>"62.5 MB": decimal units, as du and the README print them.</summary>
    public static string Size(long bytes) => bytes switch
    {
        < 1_000 => $"{bytes} B",
        < 1_000_000 => $"{bytes / 1e3:0.#} kB",
        < 1_000_000_000 => $"{bytes / 1e6:0.#} MB",
        _ => $"{bytes / 1e9:0.##} GB",
    };

    /// <summary>
    /// Bytes each run takes: its events plus every stored checkpoint it names (kept ones shared by several runs, as
    /// identical runs share weights, count for each) and its transient copies.
    /// </summary>
    public static async Task<IReadOnlyDictionary<Guid, long>> DiskUsageAsync(IDocumentStore store, string database, string schema,
        IReadOnlyList<StoredCheckpoint> stored, CancellationToken ct)
    {
        var usage = new Dictionary<Guid, long>();
        await using var session = store.QuerySession();
        var sizes = stored.GroupBy(c => c.Sha256).ToDictionary(g => g.Key, g => g.First().Bytes);
        var named = await session.Events.QueryAllRawEvents().Where(e => e.EventTypeName == "checkpoint_published").ToListAsync(ct);
        foreach (var run in named.GroupBy(e => e.StreamId))
        {
            var hashes = run.Select(e => (CheckpointPublished)e.Data).SelectMany(p => new[] { p.Checkpoint.Sha256, p.Checkpoint.TrainerState?.Sha256 })
                .OfType<string>().ToHashSet();
            usage[run.Key] = hashes.Sum(h => sizes.GetValueOrDefault(h));
        }
        foreach (var copy in stored.Where(c => c.TransientFor is not null))
            usage[copy.TransientFor!.Value] = usage.GetValueOrDefault(copy.TransientFor.Value) + copy.Bytes;

        if (!schema.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            throw new ArgumentException($"schema: '{schema}' must be letters, digits and underscores");
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand($"select stream_id, sum(pg_column_size(data))::bigint from {schema}.mt_events group by stream_id", connection);
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            usage[reader.GetGuid(0)] = usage.GetValueOrDefault(reader.GetGuid(0)) + reader.GetInt64(1);
        return usage;
    }
}

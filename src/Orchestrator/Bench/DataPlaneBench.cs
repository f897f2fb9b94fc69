using Npgsql;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using Spectre.Console;

namespace PrefTune.Orchestrator.Bench;

/// <summary>One event type of a run's stream as PostgreSQL holds it: pg_column_size(data) is what the jsonb column
/// stores (after TOAST compression), octet_length(data::text) the JSON text it stands for.</summary>
public sealed record StoredEventRow(string EventType, int Events, long StoredBytes, long TextBytes);

/// <summary>
/// `preftune bench FILE --data-plane`: where the bytes and the time of one run go. The run goes through the session's
/// pipeline (in process, or with --broker the services as child processes) while a <see cref="WireObserver"/> counts
/// every message's serialized body on the Orchestrator's bus; then the run's stream is measured in PostgreSQL, its
/// recorded checkpoints summed, and the same model work is timed without bus or store (<see cref="DirectLoop"/>).
/// Per sample means per sample drawn for training or the dataset (<see cref="RunOutcome.SamplesDrawn"/>), so the
/// evaluation's traffic is a cost each training sample carries. A benchmark: it prints numbers, asserts none.
/// </summary>
public static class DataPlaneBench
{
    public static async Task RunAsync(PipelineSession session, RunSpec spec, CancellationToken ct)
    {
        // One untimed run first: the JIT, libtorch and the broker's queues warm up.
        await session.RunAsync(spec with { Loop = spec.Loop with { GradientSteps = Math.Min(5, spec.Loop.GradientSteps), EvalEvery = 5 } }, null, ct);
        await DirectLoop.RunAsync(spec with { Loop = spec.Loop with { GradientSteps = Math.Min(5, spec.Loop.GradientSteps), EvalEvery = 5 } }, ct);

        var tally = new WireTally();
        RunOutcome outcome;
        // This process's CPU time beside the wall-clock: on a machine others are loading, wall-clock shares swing
        // by tens of percent between runs, CPU time far less (in one process it holds the services' work too; the
        // PostgreSQL server's and, with --broker, the child services' are not in it).
        var cpu = Environment.CpuUsage.TotalTime;
        using (WireObserver.Connect(session.Bus, tally))
            outcome = await session.RunAsync(spec, null, ct);
        var pipelineCpu = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
        if (outcome.Status != "completed")
            throw new InvalidOperationException($"run {outcome.RunId} {outcome.Status}: {outcome.FailureReason}");
        cpu = Environment.CpuUsage.TotalTime;
        var direct = await DirectLoop.RunAsync(spec, ct);
        var directCpu = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
        var stored = await StoredEventsAsync(session.Options.Database!, session.Options.Schema, outcome.RunId, ct);
        var recorded = await RecordedRun.LoadAsync(session.Store, outcome.RunId, ct)
            ?? throw new InvalidOperationException($"run {outcome.RunId} vanished from the event store");

        var (samples, steps) = (outcome.SamplesDrawn, outcome.GradientSteps);
        AnsiConsole.MarkupLineInterpolated($"[bold]{spec.Label}[/], {steps} gradient steps, {samples} samples drawn for training or the dataset, transport {session.Transport}, run {outcome.RunId}");
        AnsiConsole.Write(WireTable(tally, samples));
        // Over a broker the stage services are other processes (children or elsewhere), whatever starts them.
        var overBroker = !string.IsNullOrWhiteSpace(session.Options.Broker);
        if (overBroker)
            AnsiConsole.MarkupLine("counted on the Orchestrator's bus: every request it sends and every answer (or fault) it gets; not seen: "
                + "CheckpointPublished, which the Learner publishes to the Samplers (in one process it is counted)");

        AnsiConsole.Write(StoreTable(stored, samples, steps));
        // Every recorded checkpoint, weights and trainer state, as the store was asked to keep them (content-addressed:
        // a hash written twice is stored once, so this is what the run wrote, not what it occupies).
        var checkpointBytes = recorded.Checkpoints.Sum(c => c.Bytes + (c.TrainerState?.Bytes ?? 0));
        var storedBytes = stored.Sum(r => r.StoredBytes);
        var textBytes = stored.Sum(r => r.TextBytes);
        AnsiConsole.MarkupLineInterpolated($"per gradient step: event store {PerSample.Format(PerSample.Of(storedBytes, steps))} B stored ({PerSample.Format(PerSample.Of(textBytes, steps))} B JSON text), checkpoints {PerSample.Format(PerSample.Of(checkpointBytes, steps))} B ({recorded.Checkpoints.Count} recorded)");

        var pipeline = outcome.Elapsed.TotalSeconds;
        var model = direct.Elapsed.TotalSeconds;
        AnsiConsole.MarkupLineInterpolated($"wall-clock: pipeline {pipeline:0.00} s, the same model work called directly {model:0.00} s; outside the model {(pipeline - model) / pipeline:P1}");
        if (overBroker)
            AnsiConsole.MarkupLine("CPU time: not compared over a broker (the pipeline's model work runs in the service processes, not this one)");
        else
            AnsiConsole.MarkupLineInterpolated($"CPU time of this process: pipeline {pipelineCpu:0.00} s, direct {directCpu:0.00} s; outside the model {(pipelineCpu - directCpu) / pipelineCpu:P1}");
        AnsiConsole.MarkupLineInterpolated($"samples/s: pipeline {PerSample.Format(samples / pipeline, "0.0")}, direct {PerSample.Format(direct.SamplesDrawn / model, "0.0")}");
    }

    /// <summary>The wire by message type and purpose, then by purpose, with bytes per sample and each one's share.</summary>
    public static Table WireTable(WireTally tally, int samples)
    {
        var total = tally.TotalBytes;
        var table = new Table().AddColumns("message", "purpose", "messages", "bytes", "B/sample", "share");
        table.Title = new TableTitle("on the wire (serialized message bodies)");
        foreach (var row in tally.Rows)
            table.AddRow(Markup.Escape(row.MessageType), row.Purpose.ToString().ToLowerInvariant(), row.Messages.ToString("N0"), row.Bytes.ToString("N0"),
                PerSample.Format(PerSample.Of(row.Bytes, samples)), Share(row.Bytes, total));
        foreach (var purpose in Enum.GetValues<WirePurpose>().Where(p => tally.Bytes(p) > 0))
            table.AddRow("[bold]all[/]", purpose.ToString().ToLowerInvariant(), "", tally.Bytes(purpose).ToString("N0"),
                PerSample.Format(PerSample.Of(tally.Bytes(purpose), samples)), Share(tally.Bytes(purpose), total));
        table.AddRow("[bold]all[/]", "all", tally.TotalMessages.ToString("N0"), total.ToString("N0"), PerSample.Format(PerSample.Of(total, samples)), Share(total, total));
        return table;
    }

    private static Table StoreTable(IReadOnlyList<StoredEventRow> rows, int samples, int steps)
    {
        var table = new Table().AddColumns("event", "events", "stored B", "JSON text B", "stored B/sample", "stored B/step");
        table.Title = new TableTitle("in the event store (mt_events.data of the run's stream; stored is pg_column_size, after compression)");
        foreach (var row in rows)
            table.AddRow(Markup.Escape(row.EventType), row.Events.ToString("N0"), row.StoredBytes.ToString("N0"), row.TextBytes.ToString("N0"),
                PerSample.Format(PerSample.Of(row.StoredBytes, samples)), PerSample.Format(PerSample.Of(row.StoredBytes, steps)));
        var (stored, text) = (rows.Sum(r => r.StoredBytes), rows.Sum(r => r.TextBytes));
        table.AddRow("[bold]all[/]", rows.Sum(r => r.Events).ToString("N0"), stored.ToString("N0"), text.ToString("N0"),
            PerSample.Format(PerSample.Of(stored, samples)), PerSample.Format(PerSample.Of(stored, steps)));
        return table;
    }

    private static string Share(long part, long total) => total > 0 ? $"{(double)part / total:P1}" : "-";

    /// <summary>The run's events by type with their stored and JSON text sizes, largest first.</summary>
    public static async Task<IReadOnlyList<StoredEventRow>> StoredEventsAsync(string database, string schema, Guid runId, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync(ct);
        // The schema is the store's own setting, not user text reaching SQL as a value; quoted as an identifier.
        var table = $"\"{schema.Replace("\"", "\"\"")}\".mt_events";
        await using var command = new NpgsqlCommand(
            $"select type, count(*)::int, sum(pg_column_size(data))::bigint, sum(octet_length(data::text))::bigint from {table} "
            + "where stream_id = @run group by type order by 3 desc, 1", connection);
        command.Parameters.AddWithValue("run", runId);
        var rows = new List<StoredEventRow>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
            rows.Add(new StoredEventRow(reader.GetString(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3)));
        return rows;
    }
}

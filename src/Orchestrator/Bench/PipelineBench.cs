using System.Diagnostics;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using Spectre.Console;

namespace PrefTune.Orchestrator.Bench;

/// <summary>
/// What the event-sourced pipeline costs and buys, on one run: events appended per second, the share of wall-clock
/// spent in the event store and waiting on the stages (broker plus service work), an exact replay's speed against
/// the original run, and the same experiment at max_staleness K = 0, 1, 2 (wall-clock and gold reward). With
/// --broker the services run as separate processes, so K &gt;= 1 can overlap sampling with learning; in one process
/// libtorch work is serialized and K only shows its cost in reward. A benchmark: it prints numbers, asserts none.
/// </summary>
public static class PipelineBench
{
    public static async Task RunAsync(PipelineSession session, RunSpec spec, CancellationToken ct)
    {
        // One untimed run first: the JIT, libtorch and the broker's queues warm up.
        await session.RunAsync(spec with { Loop = spec.Loop with { GradientSteps = 5, EvalEvery = 5 } }, null, ct);

        var table = new Table().AddColumns("max_staleness K", "wall-clock (s)", "final gold reward", "events", "events/s",
            "event store share", "stage wait share", "lag max");
        table.Title = new TableTitle($"{spec.Label}, {spec.Loop.GradientSteps} steps, transport {session.Transport}");
        RunOutcome? onPolicy = null;
        foreach (var k in new[] { 0, 1, 2 })
        {
            var (events, store, waiting) = (session.Journal.Appended, session.Journal.Elapsed, session.Stages.Waiting);
            var clock = Stopwatch.StartNew();
            var outcome = await session.RunAsync(spec with { Loop = spec.Loop with { MaxStaleness = k } }, null, ct);
            var wall = clock.Elapsed.TotalSeconds;
            var appended = session.Journal.Appended - events;
            var record = await RunHistory.LoadAsync(session.Store, outcome.RunId, ct);
            table.AddRow(k.ToString(), $"{wall:0.00}", $"{outcome.FinalGoldReward:0.000}", appended.ToString(), $"{appended / wall:0}",
                $"{(session.Journal.Elapsed - store).TotalSeconds / wall:P0}", $"{(session.Stages.Waiting - waiting).TotalSeconds / wall:P0}",
                $"{record?.Staleness.LagMax}");
            onPolicy ??= outcome;
        }
        AnsiConsole.Write(table);

        var recorded = await RecordedRun.LoadAsync(session.Store, onPolicy!.RunId, ct)
            ?? throw new InvalidOperationException($"run {onPolicy.RunId} vanished from the event store");
        var replay = await session.ReplayExactlyAsync(recorded, ct);
        AnsiConsole.MarkupLineInterpolated($"exact replay of the K = 0 run: {replay.Matched}/{replay.Checkpoints.Count} checkpoint hashes identical in {replay.Elapsed.TotalSeconds:0.00} s against {onPolicy.Elapsed.TotalSeconds:0.00} s for the run ({onPolicy.Elapsed / replay.Elapsed:0.0}x faster: no sampling, scoring or evaluation)");
    }
}

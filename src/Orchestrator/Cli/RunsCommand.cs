using System.ComponentModel;
using System.Text.Json;
using Marten;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune runs`: the recorded runs, from the RunSummary projection.</summary>
public sealed class RunsCommand : AsyncCommand<RunsCommand.Settings>
{
    /// <summary>Columns the table needs with whole run ids; below that the runs are listed three lines each.</summary>
    public const int TableWidth = 150;

    public sealed class Settings : StoreSettings
    {
        [CommandOption("--json")]
        [Description("Print the list as JSON.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        await using var session = store.QuerySession();
        var runs = (await session.Query<RunSummary>().ToListAsync(cancellationToken)).OrderBy(r => r.StartedAt).ToList();
        // a run without an end is "running" only while a live owner holds its lease; otherwise "abandoned"
        var leases = await Runs.RunLeases.LoadAsync(session, runs.Select(r => r.Id).ToList(), cancellationToken);
        runs = runs.Select(r => r with { Status = Runs.RunLeases.StatusOf(r.Status, leases.GetValueOrDefault(r.Id), DateTimeOffset.UtcNow) }).ToList();
        if (settings.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(runs, ShowCommand.Json));
            return 0;
        }
        var disk = await Runs.CheckpointPruning.DiskUsageAsync(options, store, cancellationToken);
        string Gold(RunSummary run) => run.FinalGoldReward?.ToString("0.0000") ?? "-";
        string Disk(RunSummary run) => Runs.CheckpointPruning.Size(disk.GetValueOrDefault(run.Id));
        // Ids are printed whole: they are what `show`, `replay` and `resume` are given. A table of whole ids needs
        // TableWidth columns; a narrower console (a pipe gets 80) gets three lines a run instead of a squeezed table.
        if (AnsiConsole.Profile.Width < TableWidth)
        {
            foreach (var run in runs)
            {
                Console.WriteLine($"run {run.Id}  {run.Status}");
                Console.WriteLine($"    {run.Experiment} · {run.Label} · seed {run.Seed}");
                Console.WriteLine($"    {run.GradientSteps} steps · final gold {Gold(run)} · {Disk(run)} · started {run.StartedAt:u}");
            }
            return 0;
        }
        var table = new Table().AddColumns("run", "started", "experiment", "label", "seed", "status", "steps", "final gold", "disk");
        foreach (var run in runs)
            table.AddRow(run.Id.ToString(), $"{run.StartedAt:u}", Markup.Escape(run.Experiment), Markup.Escape(run.Label), run.Seed.ToString(),
                Markup.Escape(run.Status), run.GradientSteps.ToString(), Gold(run), Disk(run));
        AnsiConsole.Write(table);
        return 0;
    }
}

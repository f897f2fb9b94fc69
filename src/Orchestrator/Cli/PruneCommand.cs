using System.ComponentModel;
using System.Text.Json;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Checkpoints;
using PrefTune.Storage.Events;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune prune [--dry-run]`: removes the stored weights no run needs for replay, resume or lineage.</summary>
public sealed class PruneCommand : AsyncCommand<PruneCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandOption("--dry-run")]
        [Description("Say what would be removed and remove nothing.")]
        public bool DryRun { get; init; }

        [CommandOption("--json")]
        [Description("Print the result as JSON.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var checkpoints = CheckpointStoreFactory.Create(options.Checkpoints, options.Database, options.Schema);
        try
        {
            var inventory = checkpoints as ICheckpointInventory
                ?? throw new ArgumentException($"checkpoints: the store '{options.Checkpoints}' cannot list what it holds");
            var runs = await CheckpointPruning.LoadRunsAsync(store, cancellationToken);
            var plan = CheckpointPruning.Plan(runs, await inventory.ListAsync(cancellationToken), DateTimeOffset.UtcNow);
            if (!settings.DryRun && plan.Remove.Count > 0)
                await inventory.DeleteAsync(plan.Remove, cancellationToken);
            if (settings.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    settings.DryRun, Runs = runs.Count, RemovedBlobs = plan.Remove.Count, FreedBytes = plan.FreedBytes,
                    KeptBlobs = plan.Keep.Count, KeptBytes = plan.KeptBytes,
                }, ShowCommand.Json));
                return 0;
            }
            var verb = settings.DryRun ? "would remove" : "removed";
            AnsiConsole.MarkupLineInterpolated(
                $"prune {verb} {plan.Remove.Count} checkpoint blobs, {plan.FreedBytes:N0} bytes ({CheckpointPruning.Size(plan.FreedBytes)}); kept {plan.Keep.Count} ({CheckpointPruning.Size(plan.KeptBytes)}) that {runs.Count} recorded runs need for replay and resume. No event was touched.");
            return 0;
        }
        finally
        {
            (checkpoints as IDisposable)?.Dispose();
        }
    }
}

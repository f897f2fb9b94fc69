using System.ComponentModel;
using System.Text.Json;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune resume RUN`: continue a run whose processes died, from its event stream and last checkpoint.</summary>
public sealed class ResumeCommand : AsyncCommand<ResumeCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run id, or a unique prefix or suffix of it (see `preftune runs`).")]
        public string Run { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print the result as JSON on stdout.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions(), cancellationToken);
        Guid runId;
        using (var store = EventStoreRegistration.For(options.Database!, options.Schema))
        {
            runId = await RunIds.ResolveAsync(store, settings.Run, cancellationToken);
            await RunLeases.EnsureNotLiveAsync(store, runId, cancellationToken); // a live run is refused before any service starts
        }
        await using var session = await PipelineSession.StartAsync(options, settings.Hosting(options), cancellationToken);
        var recorded = await RecordedRun.LoadAsync(session.Store, runId, cancellationToken)
            ?? throw new ArgumentException($"run: no events recorded for run {runId}");
        var from = recorded.Checkpoints.LastOrDefault()?.Version ?? 0;
        var outcome = await session.ResumeAsync(recorded, null, cancellationToken);
        if (settings.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                outcome.RunId, ResumedFromVersion = from, outcome.Status, outcome.FailureReason, outcome.GradientSteps, outcome.FinalGoldReward,
            }, ShowCommand.Json));
        }
        else
        {
            AnsiConsole.MarkupLineInterpolated($"run {outcome.RunId} resumed from version {from}: {outcome.Status} at step {outcome.GradientSteps}, gold reward {outcome.FinalGoldReward:0.000}");
            if (outcome.FailureReason is not null)
                AnsiConsole.MarkupLineInterpolated($"[red]{outcome.FailureReason}[/]");
        }
        return outcome.Status == "completed" ? 0 : 1;
    }
}

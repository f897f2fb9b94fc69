using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune show RUN`: a run rebuilt from its event stream alone (no service needs to be up).</summary>
public sealed class ShowCommand : AsyncCommand<ShowCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run id, or a unique prefix or suffix of it (see `preftune runs`).")]
        public string Run { get; init; } = "";

        [CommandOption("--json")]
        public bool Json { get; init; }
    }

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var runId = await RunIds.ResolveAsync(store, settings.Run, cancellationToken);
        var record = await RunHistory.LoadAsync(store, runId, cancellationToken)
            ?? throw new ArgumentException($"run: no events recorded for run {runId}");
        var outcome = record.Outcome;
        var last = outcome.Evaluations.LastOrDefault();
        var view = new
        {
            RunId = runId,
            outcome.Spec.Experiment,
            outcome.Spec.Label,
            Method = outcome.Spec.Method.Name,
            Data = outcome.Spec.Method.Data,
            outcome.Spec.Seed,
            outcome.Status,
            outcome.FailureReason,
            record.Started.StartedAt,
            record.EndedAt,
            record.Started.Transport,
            outcome.GradientSteps,
            Counts = record.Counts,
            Stats = new
            {
                LagMin = record.Staleness.LagMin,
                LagMean = record.Staleness.LagMean,
                LagMax = record.Staleness.LagMax,
                LagHistogram = record.Staleness.LagHistogram,
                ReuseHistogram = record.Staleness.ReuseHistogram,
            },
            Final = last is null ? null : new { Step = last.Step, GoldReward = last.MeanGoldReward, last.GoldRewardStd, last.Entropy, PolicyVersion = last.PolicyVersion },
            Spec = outcome.Spec,
        };
        if (settings.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(view, Json));
            return 0;
        }
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, object? value) => grid.AddRow(Markup.Escape(name), Markup.Escape(value?.ToString() ?? "-"));
        Row("run", runId);
        Row("experiment / label", $"{view.Experiment} / {view.Label} (seed {view.Seed})");
        Row("status", outcome.FailureReason is null ? outcome.Status : $"{outcome.Status}: {outcome.FailureReason}");
        Row("transport", view.Transport);
        Row("started / ended", $"{view.StartedAt:u} / {view.EndedAt:u}");
        Row("training batches", record.Counts.TrainingBatches);
        Row("dataset batches", record.Counts.DatasetBatches);
        Row("samples generated / scored", $"{record.Counts.SamplesGenerated} / {record.Counts.SamplesScored}");
        Row("batches assembled", record.Counts.BatchesAssembled);
        Row("gradient steps (updates)", record.Counts.Updates);
        Row("samples consumed by updates", record.Counts.SamplesConsumed);
        Row("checkpoints", record.Counts.Checkpoints);
        Row("evaluations", record.Counts.Evaluations);
        Row("staleness (lag: uses)", string.Join("  ", record.Staleness.LagHistogram.Select(h => $"{h.Key}: {h.Value}")));
        Row("reuse (times used: samples)", string.Join("  ", record.Staleness.ReuseHistogram.Select(h => $"{h.Key}: {h.Value}")));
        Row("final mean gold reward", last is null ? null : $"{last.MeanGoldReward:0.0000} (step {last.Step}, entropy {last.Entropy:0.000})");
        AnsiConsole.Write(grid);
        return 0;
    }
}

using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Training.LanguageModels;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune show RUN`: a run rebuilt from its event stream alone (no service needs to be up), with its staleness
/// and reuse distributions; `--checkpoint V`: the gradient steps and samples that produced policy version V.
/// </summary>
public sealed class ShowCommand : AsyncCommand<ShowCommand.Settings>
{
    public sealed class Settings : StoreSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run id, or a unique prefix or suffix of it (see `preftune runs`).")]
        public string Run { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print the run (or with --checkpoint, the lineage) as JSON on stdout.")]
        public bool Json { get; init; }

        [CommandOption("--samples <N>")]
        [Description("Print N responses of the run's last training batch (a language-model run's as text), with their rewards.")]
        public int? Samples { get; init; }

        [CommandOption("--checkpoint <V>")]
        [Description("List the gradient steps, batches and samples that produced published policy version V (a whole number).")]
        public string? Checkpoint { get; init; }
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
        if (settings.Checkpoint is { } text)
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var version)
                ? ShowLineage(runId, version, record.Ledger, settings.Json)
                : throw new ArgumentException($"--checkpoint {text}: expected a whole number, a policy version run {runId} published ({Published(record.Ledger)})");
        if (settings.Samples is { } count)
            return await ShowSamplesAsync(store, runId, record.Outcome.Spec, count, settings.Json, cancellationToken);
        var outcome = record.Outcome;
        // a run without an end is "running" only while a live owner holds its lease; otherwise "abandoned"
        await using (var query = store.QuerySession())
            outcome = outcome with { Status = RunLeases.StatusOf(outcome.Status, await query.LoadAsync<RunLease>(runId, cancellationToken), DateTimeOffset.UtcNow) };
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
            record.Staleness,
            Steps = record.Ledger.Steps.Select(s => new StepView(s.Step, s.Pass, s.Minibatch, s.VersionBefore, s.Lags, s.LagMin, s.LagMean, s.LagMax)),
            record.Ledger.Batches,
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
        var staleness = record.Staleness;
        Row("lag min / mean / max", $"{staleness.LagMin} / {staleness.LagMean:0.00} / {staleness.LagMax} policy versions");
        Row("batch staleness min / mean / max", $"{staleness.StalenessMin} / {staleness.StalenessMean:0.00} / {staleness.StalenessMax} at hand-over");
        Row("final mean gold reward", last is null ? null : $"{last.MeanGoldReward:0.0000} (step {last.Step}, entropy {last.Entropy:0.000})");
        AnsiConsole.Write(grid);
        AnsiConsole.Write(Bars("lag: (step, sample) uses", staleness.LagHistogram));
        AnsiConsole.Write(Bars("reuse: samples used n times", staleness.ReuseHistogram));
        if (staleness.ImportanceRatio is { } r)
            AnsiConsole.Write(new Table().Title("importance ratio pi_theta / pi_old over (step, sample) uses")
                .AddColumns("uses", "min", "p05", "p25", "median", "p75", "p95", "max")
                .AddRow(r.Count.ToString(), $"{r.Min:0.000}", $"{r.P05:0.000}", $"{r.P25:0.000}", $"{r.Median:0.000}", $"{r.P75:0.000}", $"{r.P95:0.000}", $"{r.Max:0.000}"));
        return 0;
    }

    /// <summary>Per-step lags for --json; the step's sample ids are in the lineage (--checkpoint).</summary>
    private sealed record StepView(int Step, int Pass, int Minibatch, int VersionBefore, IReadOnlyList<int> Lags,
        [property: JsonPropertyName("stats/lag_min")] int LagMin,
        [property: JsonPropertyName("stats/lag_mean")] double LagMean,
        [property: JsonPropertyName("stats/lag_max")] int LagMax);

    private static int ShowLineage(Guid runId, int version, RunLedger ledger, bool json)
    {
        var lineage = ledger.LineageOf(version) ?? throw new ArgumentException(
            $"checkpoint: run {runId} never published policy version {version} ({Published(ledger)})");
        var sampleIds = lineage.Updates.SelectMany(u => u.SampleIds).Distinct().ToList();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                RunId = runId,
                PolicyVersion = version,
                lineage.Checkpoint,
                Updates = lineage.Updates.Select(u => new
                {
                    u.Step, u.BatchId, u.Pass, u.Minibatch, u.VersionBefore, u.VersionAfter, u.SampleIds, u.SamplingVersions,
                }),
                BatchIds = lineage.Updates.Select(u => u.BatchId).Distinct(),
                SampleIds = sampleIds,
            }, Json));
            return 0;
        }
        AnsiConsole.MarkupLineInterpolated($"policy version {version} of run {runId}: sha256 {lineage.Checkpoint.Sha256}, {lineage.Checkpoint.Uri}");
        AnsiConsole.MarkupLineInterpolated($"[grey]{lineage.Updates.Count} gradient steps, {sampleIds.Count} distinct samples; ids shortened to their last 12 digits[/]");
        var table = new Table().AddColumns("step", "batch", "pass", "minibatch", "sampling versions", "samples");
        foreach (var u in lineage.Updates)
            table.AddRow(u.Step.ToString(), u.BatchId.ToString()[^12..], u.Pass.ToString(), u.Minibatch.ToString(),
                string.Join(" ", u.SamplingVersions.Distinct().Order()), string.Join(" ", u.SampleIds.Select(id => id.ToString()[^12..])));
        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>"published: 0-300", or the versions one by one when they have gaps.</summary>
    private static string Published(RunLedger ledger)
    {
        var versions = ledger.Checkpoints.Keys.Order().ToList();
        return versions.Count == 0 ? "it published none"
            : versions[^1] - versions[0] == versions.Count - 1 ? $"published: {versions[0]}-{versions[^1]}"
            : $"published: {string.Join(", ", versions)}";
    }

    /// <summary>A histogram as horizontal bars; more than <paramref name="rows"/> distinct keys are binned into ranges.</summary>
    private static BarChart Bars(string label, SortedDictionary<int, int> histogram, int rows = 16)
    {
        var chart = new BarChart().Width(70).Label(Markup.Escape(label)).LeftAlignLabel();
        if (histogram.Count == 0) return chart;
        var (low, high) = (histogram.Keys.First(), histogram.Keys.Last());
        var width = (high - low) / rows + 1;
        foreach (var bin in histogram.GroupBy(h => (h.Key - low) / width))
        {
            var from = low + bin.Key * width;
            var name = width == 1 ? from.ToString() : $"{from}-{Math.Min(from + width - 1, high)}";
            chart.AddItem(name, bin.Sum(h => h.Value), Color.SteelBlue);
        }
        return chart;
    }


    /// <summary>The last training batch's first <paramref name="count"/> rollouts: prompt id, the policy version that sampled
    /// them, how they ended, their rewards, and (a language model's) the response decoded with the run's tokenizer.</summary>
    private static async Task<int> ShowSamplesAsync(Marten.IDocumentStore store, Guid runId, Messages.RunSpec spec, int count, bool json, CancellationToken ct)
    {
        if (count < 1) throw new ArgumentException($"--samples {count}: expected a positive number of responses");
        var recorded = (await RecordedRun.LoadAsync(store, runId, ct))!;
        var batch = recorded.Events.OfType<Messages.RolloutsGenerated>().LastOrDefault(g => g.Purpose == Messages.RolloutPurpose.Training)
            ?? throw new ArgumentException($"run {runId} recorded no training batch yet");
        var scores = recorded.Events.OfType<Messages.RolloutsScored>().Where(s => s.BatchId == batch.BatchId).SelectMany(s => s.Scores).ToDictionary(s => s.SampleId);
        using var tokenizer = spec.Task.Model is { } model ? Training.LanguageModels.TextTokenizers.Load(Training.Tasks.Length.LengthTask.TokenizerPath(model)) : null;
        var rows = batch.Rollouts.Take(count).Select(r => new
        {
            r.SampleId, r.PromptId, r.PolicyVersion, Finish = r.Finish, Tokens = r.ResponseTokens.Length,
            Reward = scores.TryGetValue(r.SampleId, out var s) ? s.Reward : (double?)null,
            GoldReward = scores.TryGetValue(r.SampleId, out var g) ? g.GoldReward : (double?)null,
            Text = tokenizer?.Continuation(r.PromptTokens, r.Finish == Messages.FinishReason.Stop ? r.ResponseTokens[..^1] : r.ResponseTokens),
            Ids = tokenizer is null ? r.ResponseTokens : null,
        }).ToList();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { RunId = runId, batch.BatchId, batch.Iteration, Samples = rows }, Json));
            return 0;
        }
        AnsiConsole.MarkupLineInterpolated($"run {runId}, training batch {batch.BatchId} (iteration {batch.Iteration}): {rows.Count} of {batch.Rollouts.Count} responses");
        foreach (var row in rows)
        {
            AnsiConsole.MarkupLineInterpolated($"[bold]{row.PromptId}[/] v{row.PolicyVersion}, {row.Tokens} tokens{(row.Finish is { } f ? ", " + f.ToString().ToLowerInvariant() : "")}, reward {row.Reward:0.###}, gold {row.GoldReward:0.###}");
            Console.WriteLine(row.Text ?? string.Join(",", row.Ids!));
        }
        return 0;
    }
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;
using Spectre.Console;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>One method label of an experiment, aggregated over its seeds.</summary>
public sealed record MethodSummary
{
    public required string Label { get; init; }
    /// <summary>Registry name of the method.</summary>
    public required string Method { get; init; }
    /// <summary>"online" or "offline".</summary>
    public required string Data { get; init; }
    /// <summary>Mean over seeds of each run's last evaluation; null when no run was evaluated.</summary>
    public required double? FinalGoldReward { get; init; }
    /// <summary>Lowest and highest per-seed final gold reward; only with more than one seed.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? FinalGoldRewardMin { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? FinalGoldRewardMax { get; init; }
    /// <summary>Mean over seeds of the last evaluation's win rate against the reference on held-out prompts (eval/win_rate),
    /// for tasks that compare with the reference; null otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? FinalWinRate { get; init; }
    /// <summary>Mean over seeds of the last evaluation's gold reward minus the reference's on the same prompts
    /// (eval/gold_reward_increase); null where there is no comparison.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? FinalGoldRewardIncrease { get; init; }
    /// <summary>Gradient steps per run, mean over seeds (rounded).</summary>
    public required int GradientSteps { get; init; }
    /// <summary>Training samples drawn per run (policy samples or dataset responses), mean over seeds (rounded).</summary>
    public required int SamplesDrawn { get; init; }
    public required IReadOnlyList<Guid> RunIds { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
    /// <summary>Runs of this label that failed (their last evaluation still counts).</summary>
    public required int RunsFailed { get; init; }
    /// <summary>Per run (in <see cref="RunIds"/> order): lag stats, lag and reuse histograms, importance ratios; when the ledgers were given.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<RunStaleness>? Staleness { get; init; }
}

/// <summary>The end-of-experiment table: per method label, the final mean gold reward and what it cost.</summary>
public sealed class SummaryReport
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public SummaryReport(Experiment experiment, IReadOnlyList<RunOutcome> outcomes, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null)
        : this(experiment.Name, outcomes, ledgers) { }

    /// <summary>Groups the runs by label, in the order the labels first appear; <paramref name="ledgers"/> by RunId add the staleness.</summary>
    public SummaryReport(string experiment, IReadOnlyList<RunOutcome> outcomes, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null)
    {
        Experiment = experiment;
        Methods = outcomes.GroupBy(o => o.Spec.Label).Select(runs => Summarize(runs) with
        {
            Staleness = ledgers is null ? null : runs.Select(r => ledgers.TryGetValue(r.RunId, out var l) ? l.Staleness() : new RunStaleness()).ToList(),
        }).ToList();
    }

    public string Experiment { get; }
    public IReadOnlyList<MethodSummary> Methods { get; }

    /// <summary>
    /// <c>{experiment, [report_folder,] methods: [{label, method, data, final_gold_reward, ...}]}</c>, indented,
    /// snake_case; <paramref name="reportFolder"/> is included when given (the CLI's <c>--json</c> output).
    /// </summary>
    public string ToJson(string? reportFolder = null) =>
        JsonSerializer.Serialize(new Document(Experiment, reportFolder, Methods), Json);

    private sealed record Document(
        string Experiment,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ReportFolder,
        IReadOnlyList<MethodSummary> Methods);

    public Table Render()
    {
        // The run ids are not a column: whole, they are too wide for 80 columns, and a prefix is shared by every run of a file.
        var compared = Methods.Any(m => m.FinalWinRate is not null);
        var table = new Table().Title(Markup.Escape(Experiment))
            .AddColumn(new TableColumn("method").NoWrap()).AddColumns("data", "final gold reward");
        if (compared) table.AddColumns("gold gain", "win rate");   // over the reference, on the held-out prompts
        table.AddColumns("gradient steps", "samples drawn");
        foreach (var m in Methods)
        {
            List<string> cells = [Markup.Escape(m.Label) + (m.RunsFailed > 0 ? $" [red]{m.RunsFailed} failed[/]" : ""), m.Data, Reward(m)];
            if (compared)
                cells.AddRange([m.FinalGoldRewardIncrease is { } gain ? Invariant(gain, "+0.000;-0.000;0.000") : "-", m.FinalWinRate is { } rate ? Invariant(rate, "F3") : "-"]);
            cells.AddRange([Invariant(m.GradientSteps), Invariant(m.SamplesDrawn)]);
            table.AddRow([.. cells]);
        }
        return table;
    }

    /// <summary>One line per run, its whole id first (what `show`, `replay` and `resume` take): "run ID  LABEL seed N".</summary>
    public IEnumerable<string> RunLines() =>
        Methods.SelectMany(m => m.RunIds.Zip(m.Seeds, (id, seed) => $"run {id}  {m.Label} seed {Invariant(seed)}"));

    private static MethodSummary Summarize(IGrouping<string, RunOutcome> runs)
    {
        var finals = runs.Select(r => r.FinalGoldReward).OfType<double>().ToList();
        var several = runs.Count() > 1 && finals.Count > 0;
        double? Final(string metric)
        {
            var values = runs.Select(r => r.FinalMetric(metric)).OfType<double>().ToList();
            return values.Count == 0 ? null : values.Average();
        }
        return new MethodSummary
        {
            Label = runs.Key,
            Method = runs.First().Spec.Method.Name,
            Data = runs.First().Spec.Method.Data.ToString().ToLowerInvariant(),
            FinalGoldReward = finals.Count == 0 ? null : finals.Average(),
            FinalGoldRewardMin = several ? finals.Min() : null,
            FinalGoldRewardMax = several ? finals.Max() : null,
            FinalWinRate = Final(Messages.ComparisonMetrics.WinRate),
            FinalGoldRewardIncrease = Final(Messages.ComparisonMetrics.GoldRewardIncrease),
            GradientSteps = (int)Math.Round(runs.Average(r => r.GradientSteps)),
            SamplesDrawn = (int)Math.Round(runs.Average(r => r.SamplesDrawn)),
            RunIds = runs.Select(r => r.RunId).ToList(),
            Seeds = runs.Select(r => r.Spec.Seed).ToList(),
            RunsFailed = runs.Count(r => r.Status == "failed"),
        };
    }

    private static string Reward(MethodSummary m) =>
        m.FinalGoldReward is not { } mean ? "-"
        : m.FinalGoldRewardMin is { } min && m.FinalGoldRewardMax is { } max
            ? $"{Invariant(mean, "F3")} [grey]({Invariant(min, "F3")} to {Invariant(max, "F3")})[/]"
            : Invariant(mean, "F3");

    private static string Invariant(IFormattable value, string? format = null) =>
        value.ToString(format, CultureInfo.InvariantCulture);
}

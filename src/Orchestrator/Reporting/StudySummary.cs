using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// One cell of a study's table: a (reward, method) of the main grid or a (reward, sweep value), over its seeds.
/// Every number is a mean over the cell's runs of a per-run number read from the run's recorded events.
/// </summary>
public sealed record StudyCellSummary
{
    public required string Reward { get; init; }
    /// <summary>The method's label (main grid) or the sweep's label.</summary>
    public required string Label { get; init; }
    /// <summary>Registry name of the method.</summary>
    public required string Method { get; init; }
    /// <summary>"online" or "offline".</summary>
    public required string Data { get; init; }
    /// <summary>The swept loop field and its value; null in the main grid.</summary>
    public string? SweepField { get; init; }
    public double? SweepValue { get; init; }
    public required IReadOnlyList<int> Seeds { get; init; }
    public required IReadOnlyList<Guid> RunIds { get; init; }
    public required int RunsFailed { get; init; }
    /// <summary>Each run's last evaluation (mean gold reward of fresh samples): mean over seeds.</summary>
    public double? FinalGoldRewardMean { get; init; }
    /// <summary>Sample standard deviation over seeds of the same; null with fewer than two seeds.</summary>
    public double? FinalGoldRewardStd { get; init; }
    /// <summary>KL(pi || pi_ref) at the last evaluation (eval/objective/kl, Monte-Carlo over its samples): mean over seeds.</summary>
    public double? EvalKl { get; init; }
    /// <summary>Entropy of pi at the last evaluation (nats): mean over seeds.</summary>
    public double? EvalEntropy { get; init; }
    /// <summary>Pair methods: train/rewards/chosen (implicit reward of y_w), mean of the last <see cref="StudySummary.Window"/> steps, mean over seeds.</summary>
    public double? RewardsChosen { get; init; }
    /// <summary>Pair methods: train/rewards/rejected, likewise.</summary>
    public double? RewardsRejected { get; init; }
    /// <summary>Pair methods: train/rewards/margins, likewise.</summary>
    public double? RewardsMargins { get; init; }
    /// <summary>Pair methods: train/logps/chosen (log pi(y_w|x)), mean of the first <see cref="StudySummary.Window"/> steps, mean over seeds.</summary>
    public double? LogpsChosenStart { get; init; }
    /// <summary>Pair methods: train/logps/chosen, mean of the last <see cref="StudySummary.Window"/> steps, mean over seeds.</summary>
    public double? LogpsChosenEnd { get; init; }

    /// <summary>Language-model tasks: eval/completions/mean_length (tokens, the stop token not counted) at the last evaluation, mean over seeds.</summary>
    public double? FinalMeanLength { get; init; }
    /// <summary>Runs on a reward model: eval/proxy_reward (mean r_phi of the evaluation's samples) at the last evaluation, mean over seeds.</summary>
    public double? FinalProxyReward { get; init; }
    /// <summary>Tasks that compare with the reference (preference): eval/win_rate at the last evaluation, mean over seeds.</summary>
    public double? FinalWinRate { get; init; }
    /// <summary>A prepared task: the held-out accuracy of the reward model its runs trained on (one per task).</summary>
    public double? RewardModelAccuracy { get; init; }

    [JsonIgnore]
    public bool IsSweep => SweepField is not null;

    /// <summary>"peak70 / dpo (online)" or "peak70 / rwr-B B=40".</summary>
    [JsonIgnore]
    public string Name => IsSweep ? $"{Label} {SweepField}={StudyValues.Format(SweepValue ?? 0)}" : Label;
}

/// <summary>
/// A study's table: one row per cell in the study's order (the main grid reward by reward, then the sweeps),
/// written as <c>table.csv</c>, <c>table.md</c> and the cells of <c>summary.json</c>.
/// </summary>
public sealed class StudySummary
{
    /// <summary>Gradient steps averaged for the "start" and "end" of a training metric.</summary>
    public const int Window = 10;

    public const string CsvHeader =
        "reward,label,method,data,sweep_field,sweep_value,seeds,runs_failed,final_gold_reward_mean,final_gold_reward_std,"
        + "eval_kl,eval_entropy,rewards_chosen,rewards_rejected,rewards_margins,logps_chosen_start,logps_chosen_end,"
        + "final_mean_length,final_proxy_reward,reward_model_accuracy,run_ids";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <param name="prepared">A prepared study's tasks (their reward models' accuracy joins the table).</param>
    public StudySummary(string name, Guid studyId, IReadOnlyList<StudyCellRun> runs, IReadOnlyList<StudyTaskPrepared>? prepared = null)
    {
        Name = name;
        StudyId = studyId;
        Runs = runs;
        Prepared = prepared ?? [];
        Cells = runs.GroupBy(r => (r.Cell.Reward, r.Cell.Label, r.Cell.SweepField, r.Cell.SweepValue))
            .Select(g => Summarize(g.ToList()) with { RewardModelAccuracy = Prepared.FirstOrDefault(p => p.Reward == g.Key.Reward)?.EvalAccuracy })
            .ToList();
    }

    public IReadOnlyList<StudyTaskPrepared> Prepared { get; }

    /// <summary>The cells' runs are language-model runs (their table shows lengths).</summary>
    public bool HasLengths => Cells.Any(c => c.FinalMeanLength is not null);
    /// <summary>Whether the cells were compared with the reference (a win rate to show).</summary>
    public bool HasWinRates => Cells.Any(c => c.FinalWinRate is not null);

    public string Name { get; }
    public Guid StudyId { get; }
    public IReadOnlyList<StudyCellRun> Runs { get; }
    public IReadOnlyList<StudyCellSummary> Cells { get; }

    public IEnumerable<StudyCellSummary> MainGrid => Cells.Where(c => !c.IsSweep);
    public IEnumerable<StudyCellSummary> Sweeps => Cells.Where(c => c.IsSweep);

    /// <summary>Distinct runs linked by the study (a run shared by two cells counts once).</summary>
    public IReadOnlyList<RunOutcome> DistinctRuns => Runs.Select(r => r.Outcome).DistinctBy(o => o.RunId).ToList();

    /// <summary><c>{study, study_id, report_folder, runs, runs_failed, window, cells: [...]}</c>, indented, snake_case.</summary>
    public string ToJson(string? reportFolder = null) => JsonSerializer.Serialize(new Document(
        Name, StudyId, reportFolder, DistinctRuns.Count, DistinctRuns.Count(r => r.Status != "completed"), Window, Cells), Json);

    private sealed record Document(
        string Study, Guid StudyId,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ReportFolder,
        int Runs, int RunsFailed, int Window, IReadOnlyList<StudyCellSummary> Cells);

    /// <summary>Full precision (round-trip) numbers; empty where a number does not apply.</summary>
    public IEnumerable<string> CsvLines() => Cells.Select(c => string.Join(",",
            Csv(c.Reward), Csv(c.Label), Csv(c.Method), c.Data, c.SweepField ?? "", Number(c.SweepValue),
            string.Join(" ", c.Seeds), Invariant(c.RunsFailed),
            Number(c.FinalGoldRewardMean), Number(c.FinalGoldRewardStd), Number(c.EvalKl), Number(c.EvalEntropy),
            Number(c.RewardsChosen), Number(c.RewardsRejected), Number(c.RewardsMargins),
            Number(c.LogpsChosenStart), Number(c.LogpsChosenEnd),
            Number(c.FinalMeanLength), Number(c.FinalProxyReward), Number(c.RewardModelAccuracy), string.Join(" ", c.RunIds)))
        .Prepend(CsvHeader);

    /// <summary>A Markdown table of <paramref name="cells"/>, 3 decimals, with the full run ids (`preftune show RUN`).</summary>
    /// <param name="lengths">Language-model cells: also the final mean length, proxy reward and the reward model's accuracy.</param>
    /// <param name="winRates">Cells compared with the reference: also the final win rate against it.</param>
    public static IEnumerable<string> MarkdownTable(IEnumerable<StudyCellSummary> cells, bool lengths = false, bool winRates = false)
    {
        yield return "| reward | cell | method | data | seeds | final gold reward (mean ± std) | "
                     + (winRates ? "win rate vs reference | " : "")
                     + (lengths ? "mean length | proxy reward | RM accuracy | " : "")
                     + "KL(π‖π_ref) | entropy | reward y_w | reward y_l | margin | log π(y_w): start → end | runs |";
        yield return "|---|---|---|---|---|---|" + (winRates ? "---|" : "") + (lengths ? "---|---|---|" : "") + "---|---|---|---|---|---|---|";
        foreach (var c in cells)
            yield return "| " + string.Join(" | ",
                new[] { c.Reward, Escape(c.Name), c.Method, c.Data, Invariant(c.Seeds.Count), Gold(c) }
                .Concat(winRates ? [Fixed(c.FinalWinRate)] : [])
                .Concat(lengths ? [Fixed(c.FinalMeanLength), Fixed(c.FinalProxyReward), Fixed(c.RewardModelAccuracy)] : [])
                .Concat([Fixed(c.EvalKl), Fixed(c.EvalEntropy), Fixed(c.RewardsChosen), Fixed(c.RewardsRejected), Fixed(c.RewardsMargins),
                    c.LogpsChosenStart is null ? "–" : $"{Fixed(c.LogpsChosenStart)} → {Fixed(c.LogpsChosenEnd)}",
                    string.Join(" ", c.RunIds.Select(id => $"`{id}`")) + (c.RunsFailed > 0 ? $" ({c.RunsFailed} failed)" : "")])) + " |";
    }

    /// <summary>Columns the table needs to show its figures unbroken; below that (a pipe gets 80) <see cref="Render(int)"/> prints a list.</summary>
    public const int TableWidth = 120;

    /// <summary>The table where it fits; in a narrower console, one block per cell whose figures wrap between words, never inside a number.</summary>
    public IRenderable Render(int width)
    {
        if (width >= TableWidth)
            return Render();
        var rows = new List<IRenderable> { new Markup($"[bold]{Markup.Escape($"{Name} (study {StudyId})")}[/]") };
        foreach (var c in Cells)
        {
            rows.Add(new Text(""));
            rows.Add(new Markup($"{Markup.Escape($"{c.Reward}  {c.Name}  ({Invariant(c.Seeds.Count)} seed{(c.Seeds.Count == 1 ? "" : "s")})")}"
                + (c.RunsFailed > 0 ? $" [red]{c.RunsFailed} failed[/]" : "")));
            var logps = c.LogpsChosenStart is null ? "–" : $"{Fixed(c.LogpsChosenStart)} → {Fixed(c.LogpsChosenEnd)}";
            var length = c.FinalMeanLength is null ? "" : $"mean length {Fixed(c.FinalMeanLength)}; proxy reward {Fixed(c.FinalProxyReward)}; ";
            rows.Add(new Padder(new Text($"final gold reward {Gold(c)}; {length}KL(π‖π_ref) {Fixed(c.EvalKl)}; entropy {Fixed(c.EvalEntropy)}; "
                + $"margin {Fixed(c.RewardsMargins)}; log π(y_w) start → end {logps}"), new Padding(2, 0, 0, 0)));
        }
        return new Rows(rows);
    }

    public Table Render()
    {
        var table = new Table().Title(Markup.Escape($"{Name} (study {StudyId})"))
            .AddColumns(["reward", "cell", "seeds", "final gold reward", .. HasLengths ? new[] { "mean length" } : [], "KL(π‖π_ref)", "entropy", "margin", "log π(y_w) start → end"]);
        foreach (var c in Cells)
            table.AddRow([Markup.Escape(c.Reward), Markup.Escape(c.Name), Invariant(c.Seeds.Count),
                Markup.Escape(Gold(c)) + (c.RunsFailed > 0 ? $" [red]{c.RunsFailed} failed[/]" : ""),
                .. HasLengths ? new[] { Fixed(c.FinalMeanLength) } : [],
                Fixed(c.EvalKl), Fixed(c.EvalEntropy), Fixed(c.RewardsMargins),
                c.LogpsChosenStart is null ? "–" : $"{Fixed(c.LogpsChosenStart)} → {Fixed(c.LogpsChosenEnd)}"]);
        return table;
    }

    private static StudyCellSummary Summarize(IReadOnlyList<StudyCellRun> runs)
    {
        var cell = runs[0].Cell;
        var outcomes = runs.Select(r => r.Outcome).ToList();
        var spec = outcomes[0].Spec;
        var finals = outcomes.Select(o => o.FinalGoldReward).OfType<double>().ToList();
        return new StudyCellSummary
        {
            Reward = cell.Reward,
            Label = cell.Label,
            Method = spec.Method.Name,
            Data = spec.Method.Data.ToString().ToLowerInvariant(),
            SweepField = cell.SweepField,
            SweepValue = cell.SweepValue,
            Seeds = runs.Select(r => r.Cell.Seed).ToList(),
            RunIds = outcomes.Select(o => o.RunId).ToList(),
            RunsFailed = outcomes.Count(o => o.Status != "completed"),
            FinalGoldRewardMean = Mean(finals),
            FinalGoldRewardStd = finals.Count < 2 ? null : Math.Sqrt(finals.Sum(f => Math.Pow(f - finals.Average(), 2)) / (finals.Count - 1)),
            EvalKl = Mean(outcomes.Select(o => o.Evaluations.LastOrDefault()?.Metrics.GetValueOrDefault("eval/objective/kl", double.NaN))
                .OfType<double>().Where(v => !double.IsNaN(v))),
            EvalEntropy = Mean(outcomes.Select(o => o.Evaluations.LastOrDefault()?.Entropy).OfType<double>()),
            RewardsChosen = Mean(outcomes.Select(o => Last(o, "train/rewards/chosen")).OfType<double>()),
            RewardsRejected = Mean(outcomes.Select(o => Last(o, "train/rewards/rejected")).OfType<double>()),
            RewardsMargins = Mean(outcomes.Select(o => Last(o, "train/rewards/margins")).OfType<double>()),
            LogpsChosenStart = Mean(outcomes.Select(o => First(o, "train/logps/chosen")).OfType<double>()),
            LogpsChosenEnd = Mean(outcomes.Select(o => Last(o, "train/logps/chosen")).OfType<double>()),
            FinalMeanLength = Mean(outcomes.Select(o => o.FinalMetric("eval/completions/mean_length")).OfType<double>()),
            FinalProxyReward = Mean(outcomes.Select(o => o.FinalMetric("eval/proxy_reward")).OfType<double>()),
            FinalWinRate = Mean(outcomes.Select(o => o.FinalMetric(Messages.ComparisonMetrics.WinRate)).OfType<double>()),
        };
    }

    /// <summary>Mean of a training metric over the run's first <see cref="Window"/> steps that report it; null when none do.</summary>
    public static double? First(RunOutcome run, string metric) => Mean(Values(run, metric).Take(Window));

    /// <summary>Mean of a training metric over the run's last <see cref="Window"/> steps that report it; null when none do.</summary>
    public static double? Last(RunOutcome run, string metric) => Mean(Values(run, metric).TakeLast(Window));

    private static IEnumerable<double> Values(RunOutcome run, string metric) =>
        run.Updates.Where(u => u.Metrics.ContainsKey(metric)).Select(u => u.Metrics[metric]);

    private static double? Mean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? null : list.Average();
    }

    private static string Gold(StudyCellSummary c) =>
        c.FinalGoldRewardMean is not { } mean ? "–"
        : c.FinalGoldRewardStd is { } std ? $"{Fixed(mean)} ± {Fixed(std)}"
        : Fixed(mean);

    private static string Fixed(double? value) => value is { } v ? v.ToString("F3", CultureInfo.InvariantCulture) : "–";

    private static string Number(double? value) => value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : "";

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string text) => text.Replace("|", "\\|");

    /// <summary>A CSV field: quoted when it holds a comma, quote or line break.</summary>
    internal static string Csv(string text) =>
        text.IndexOfAny([',', '"', '\n', '\r']) < 0 ? text : $"\"{text.Replace("\"", "\"\"")}\"";
}

using System.Text;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// Writes a study's report folder: per reward <c>gold_reward_&lt;reward&gt;.png</c> (one line per method), per sweep
/// and reward <c>sweep_&lt;label&gt;_&lt;reward&gt;.png</c> (one line per value), <c>table.csv</c>, <c>table.md</c>,
/// <c>summary.json</c> and <c>study.md</c>, which embeds the plots and the table.
/// </summary>
public static class StudyReport
{
    public const string TableCsv = "table.csv";
    public const string TableMarkdown = "table.md";
    public const string SummaryJson = "summary.json";
    public const string StudyMarkdown = "study.md";
    /// <summary>Every evaluation of every main-grid and sweep run, one line each: the numbers behind the plots.</summary>
    public const string CurvesCsv = "curves.csv";

    /// <summary>A language-model study's complementarity figure (PAPER.md, Problem 2): one panel per task.</summary>
    public const string LengthsPng = "lengths.png";

    public static string GoldRewardPng(string reward) => $"gold_reward_{reward}.png";

    public static string SweepPng(string sweep, string reward) => $"sweep_{sweep}_{reward}.png";

    /// <returns>The paths of the files written: the plots (rewards, then sweeps), then the four above.</returns>
    public static IReadOnlyList<string> Write(string folder, StudySummary summary)
    {
        Directory.CreateDirectory(folder);
        string PathOf(string file) => Path.Combine(folder, file);
        var files = new List<string>();
        var seeds = summary.Cells.Select(c => c.Seeds.Count).DefaultIfEmpty(0).Max();
        var band = seeds > 1 ? $"mean of {seeds} seeds, band from lowest to highest" : "one seed";

        foreach (var reward in Rewards(summary))
        {
            var series = summary.MainGrid.Where(c => c.Reward == reward).Select(c => (c.Label, RunsOf(summary, c))).ToList();
            files.Add(PathOf(GoldRewardPng(reward)));
            GoldRewardPlot.Write(files[^1], $"{summary.Name}, {reward}: mean gold reward ({band})", series);
        }
        if (summary.HasLengths)
        {
            files.Add(PathOf(LengthsPng));
            GoldRewardPlot.WritePanels(files[^1], Rewards(summary).Select(reward =>
            {
                var cells = summary.MainGrid.Where(c => c.Reward == reward).ToList();
                var series = cells.Select(c => (c.Label, RunsOf(summary, c))).ToList();
                var goal = series.SelectMany(s => s.Item2).FirstOrDefault()?.Spec.Task.Length?.Goal;
                var metric = GoldRewardPlot.ForLengthGoal(goal);
                return ($"{reward}: {(goal == "mode" ? "distance to the mode" : "mean length")} ({(seeds > 1 ? $"{seeds} seeds" : "one seed")})",
                    (IReadOnlyList<(string, IReadOnlyList<RunOutcome>)>)series, metric);
            }).ToList());
        }
        foreach (var (sweep, reward) in SweepPlots(summary))
        {
            var cells = summary.Sweeps.Where(c => c.Label == sweep && c.Reward == reward).ToList();
            var series = cells.Select(c => (c.Name[(c.Label.Length + 1)..], RunsOf(summary, c))).ToList();
            files.Add(PathOf(SweepPng(sweep, reward)));
            GoldRewardPlot.Write(files[^1], $"{summary.Name}, {reward}: sweep {sweep} ({cells[0].Method} {cells[0].Data}; {band})", series);
        }

        File.WriteAllLines(PathOf(TableCsv), summary.CsvLines());
        File.WriteAllLines(PathOf(CurvesCsv), Curves(summary));
        File.WriteAllLines(PathOf(TableMarkdown), Tables(summary));
        File.WriteAllText(PathOf(SummaryJson), summary.ToJson(Path.GetFullPath(folder)));
        File.WriteAllText(PathOf(StudyMarkdown), Markdown(summary));
        files.AddRange([PathOf(TableCsv), PathOf(CurvesCsv), PathOf(TableMarkdown), PathOf(SummaryJson), PathOf(StudyMarkdown)]);
        return files;
    }

    /// <summary>reward, cell, seed, run, step and the evaluation's gold reward, mean length, proxy reward, KL and entropy
    /// (empty where a run does not have one), full precision.</summary>
    private static IEnumerable<string> Curves(StudySummary summary)
    {
        static string Number(double? v) => v is { } x ? x.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "";
        static double? Metric(Messages.PolicyEvaluated e, string name) => e.Metrics.TryGetValue(name, out var v) ? v : null;
        yield return "reward,cell,seed,run_id,step,gold_reward,mean_length,proxy_reward,kl,entropy";
        foreach (var cell in summary.Cells)
            foreach (var run in RunsOf(summary, cell))
                foreach (var e in run.Evaluations)
                    yield return string.Join(",", StudySummary.Csv(cell.Reward), StudySummary.Csv(cell.Name), run.Spec.Seed, run.RunId, e.Step, Number(e.MeanGoldReward),
                        Number(Metric(e, "eval/completions/mean_length")), Number(Metric(e, "eval/proxy_reward")), Number(Metric(e, "eval/objective/kl")),
                        Number(e.Entropy));
    }

    private static IEnumerable<string> Rewards(StudySummary summary) => summary.MainGrid.Select(c => c.Reward).Distinct();

    private static IEnumerable<(string Sweep, string Reward)> SweepPlots(StudySummary summary) =>
        summary.Sweeps.Select(c => (c.Label, c.Reward)).Distinct();

    private static IReadOnlyList<RunOutcome> RunsOf(StudySummary summary, StudyCellSummary cell) =>
        cell.RunIds.Select(id => summary.Runs.First(r => r.Outcome.RunId == id).Outcome).ToList();

    private static IEnumerable<string> Tables(StudySummary summary)
    {
        var lines = new List<string> { "## Main grid", "" };
        lines.AddRange(StudySummary.MarkdownTable(summary.MainGrid, summary.HasLengths, summary.HasWinRates));
        if (summary.Sweeps.Any())
        {
            lines.AddRange(["", "## Sweeps", ""]);
            lines.AddRange(StudySummary.MarkdownTable(summary.Sweeps, summary.HasLengths, summary.HasWinRates));
        }
        return lines;
    }

    private static string Markdown(StudySummary summary)
    {
        var runs = summary.DistinctRuns;
        var failed = runs.Count(r => r.Status != "completed");
        var text = new StringBuilder()
            .AppendLine($"# Study {summary.Name}")
            .AppendLine()
            .AppendLine($"Study id `{summary.StudyId}`: its event stream records the study file and links each cell below to its run;")
            .AppendLine($"each run's own stream holds every number here (`preftune show RUN` rebuilds one). {runs.Count} runs"
                        + (failed > 0 ? $", **{failed} failed**" : ", all completed")
                        + $", {summary.Cells.Count} cells.")
            .AppendLine();
        if (summary.HasLengths)
        {
            text.AppendLine("## Response length during training").AppendLine()
                .AppendLine("The paper's complementarity figure: per task, the mean response length in tokens (Min and Skew Length: shorter is better) "
                            + "or the mean distance to the mode length (Mode Length), of fresh samples at each evaluation; dashed: the reference.")
                .AppendLine().AppendLine($"![lengths]({LengthsPng})").AppendLine();
            foreach (var prepared in summary.Prepared)
                text.AppendLine($"- **{prepared.Reward}**: {prepared.Pairs} preference pairs from the reference (`{prepared.DatasetFile}`"
                                + (prepared.ModeLength is { } mode ? $", mode length {mode}" : "")
                                + $"); reward model `{prepared.RewardModel}`, held-out accuracy "
                                + (prepared.EvalAccuracy is { } a ? $"{a:F3} on {prepared.EvalPairs} pairs" : "n/a (none held out)")
                                + (prepared.Reused ? " (prepared by an earlier study, same key)" : "") + ".");
            if (summary.Prepared.Count > 0) text.AppendLine();
        }
        text.AppendLine("## Gold reward during training")
            .AppendLine();
        foreach (var reward in Rewards(summary))
            text.AppendLine($"![{reward}]({GoldRewardPng(reward)})").AppendLine();
        foreach (var (sweep, reward) in SweepPlots(summary))
            text.AppendLine($"![{sweep}, {reward}]({SweepPng(sweep, reward)})").AppendLine();
        foreach (var line in Tables(summary))
            text.AppendLine(line);
        return text.AppendLine()
            .AppendLine("## How the numbers are made")
            .AppendLine()
            .AppendLine("- **final gold reward**: each run's last evaluation (mean gold reward of fresh samples from the policy); mean ± sample standard deviation over the cell's seeds.")
            .AppendLine("- **KL(π‖π_ref)** and **entropy**: Monte-Carlo estimates over that evaluation's samples (`eval/objective/kl`, entropy in nats); mean over seeds.")
            .AppendLine($"- **reward y_w / y_l / margin** (pair methods): the implicit rewards of the chosen and rejected responses and their difference, `train/rewards/chosen`, `train/rewards/rejected`, `train/rewards/margins`, averaged over each run's last {StudySummary.Window} gradient steps, then over seeds.")
            .AppendLine($"- **log π(y_w): start → end** (pair methods): `train/logps/chosen` averaged over the first and the last {StudySummary.Window} gradient steps: whether the chosen response's likelihood itself went up or down.")
            .AppendLine("- **mean length**, **proxy reward** (language-model runs): `eval/completions/mean_length` and `eval/proxy_reward` (mean r_φ) at the last evaluation, mean over seeds; **RM accuracy**: the task's reward model on its held-out pairs.")
            .AppendLine("- A cell whose run spec equals an earlier cell's (e.g. a sweep's B = M) links the same run.")
            .ToString();
    }
}

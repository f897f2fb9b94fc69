using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>Writes an experiment's results folder: metrics.jsonl, metrics.csv, summary.json and gold_reward.png.</summary>
public static class RunReport
{
    public const string MetricsJsonl = "metrics.jsonl";
    public const string MetricsCsv = "metrics.csv";
    public const string SummaryJson = "summary.json";
    public const string GoldRewardPng = "gold_reward.png";

    /// <returns>The paths of the files written, in the order above.</returns>
    public static IReadOnlyList<string> Write(string folder, Experiment experiment, IReadOnlyList<RunOutcome> outcomes)
    {
        Directory.CreateDirectory(folder);
        string PathOf(string file) => Path.Combine(folder, file);

        MetricsWriter.WriteJsonl(PathOf(MetricsJsonl), outcomes);
        MetricsWriter.WriteCsv(PathOf(MetricsCsv), outcomes);
        File.WriteAllText(PathOf(SummaryJson), new SummaryReport(experiment, outcomes).ToJson());
        GoldRewardPlot.Write(PathOf(GoldRewardPng), Title(experiment), outcomes);
        return [PathOf(MetricsJsonl), PathOf(MetricsCsv), PathOf(SummaryJson), PathOf(GoldRewardPng)];
    }

    private static string Title(Experiment experiment) => $"{experiment.Name}: mean gold reward during training";
}

using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// Writes an experiment's results folder: metrics.jsonl, metrics.csv, summary.json, gold_reward.png, mean_length.png for
/// a policy that generates text, and, given
/// the runs' ledgers, staleness.png (with the lag stats in metrics.jsonl and the distributions in summary.json).
/// </summary>
public static class RunReport
{
    public const string MetricsJsonl = "metrics.jsonl";
    public const string MetricsCsv = "metrics.csv";
    public const string SummaryJson = "summary.json";
    public const string GoldRewardPng = "gold_reward.png";
    public const string StalenessPng = "staleness.png";
    /// <summary>Written when the policy generates text (the length tasks): mean response length against gradient steps.</summary>
    public const string MeanLengthPng = "mean_length.png";

    /// <param name="ledgers">Each run's ledger by RunId (<see cref="RunHistory.LoadLedgerAsync"/>); null leaves staleness out.</param>
    /// <returns>The paths of the files written, in the order above.</returns>
    public static IReadOnlyList<string> Write(string folder, Experiment experiment, IReadOnlyList<RunOutcome> outcomes,
        IReadOnlyDictionary<Guid, RunLedger>? ledgers = null)
    {
        Directory.CreateDirectory(folder);
        string PathOf(string file) => Path.Combine(folder, file);

        MetricsWriter.WriteJsonl(PathOf(MetricsJsonl), outcomes, ledgers);
        MetricsWriter.WriteCsv(PathOf(MetricsCsv), outcomes);
        File.WriteAllText(PathOf(SummaryJson), new SummaryReport(experiment, outcomes, ledgers).ToJson());
        GoldRewardPlot.Write(PathOf(GoldRewardPng), Title(experiment), outcomes);
        List<string> written = [PathOf(MetricsJsonl), PathOf(MetricsCsv), PathOf(SummaryJson), PathOf(GoldRewardPng)];
        if (outcomes.Any(o => o.Evaluations.Any(e => GoldRewardPlot.MeanLength.Of(e) is not null)))
        {
            GoldRewardPlot.Write(PathOf(MeanLengthPng), $"{experiment.Name}: mean response length during training", outcomes, GoldRewardPlot.MeanLength);
            written.Add(PathOf(MeanLengthPng));
        }
        if (ledgers is null)
            return written;

        var series = outcomes.Where(o => ledgers.ContainsKey(o.RunId)).GroupBy(o => o.Spec.Label)
            .Select(g => (g.Key, (IReadOnlyList<RunLedger>)g.Select(o => ledgers[o.RunId]).ToList())).ToList();
        StalenessPlot.Write(PathOf(StalenessPng), $"{experiment.Name}: staleness and reuse", series);
        written.Add(PathOf(StalenessPng));
        return written;
    }

    private static string Title(Experiment experiment) => $"{experiment.Name}: mean gold reward during training";
}

using System.Globalization;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// Writes every evaluation and gradient step of a set of runs as <c>metrics.jsonl</c> (one JSON object per
/// line, with the ecosystem's metric names, e.g. <c>eval/gold_reward_mean</c>, <c>train/loss</c>) and the
/// evaluations alone as <c>metrics.csv</c>. Given the runs' ledgers, each train line also carries the lag of its
/// samples (<c>stats/lag_min</c>, <c>stats/lag_mean</c>, <c>stats/lag_max</c>).
/// </summary>
public static class MetricsWriter
{
    public const string CsvHeader = "label,seed,step,gold_reward_mean,gold_reward_std,entropy";

    public static void WriteJsonl(string path, IReadOnlyList<RunOutcome> outcomes, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null) =>
        File.WriteAllLines(path, JsonLines(outcomes, ledgers));

    public static void WriteCsv(string path, IReadOnlyList<RunOutcome> outcomes) =>
        File.WriteAllLines(path, CsvLines(outcomes));

    /// <summary>Per run, its train and eval lines in step order (the evaluation at step s follows gradient step s).</summary>
    public static IEnumerable<string> JsonLines(IReadOnlyList<RunOutcome> outcomes, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null) =>
        outcomes.SelectMany(o => Lines(o, ledgers)).Select(line => line.ToJsonString());

    /// <summary>One run's lines as objects: what metrics.jsonl holds, and what the TensorBoard report writes as scalars.</summary>
    public static IEnumerable<JsonObject> Lines(RunOutcome outcome, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null)
    {
        var lags = ledgers?.GetValueOrDefault(outcome.RunId)?.Steps.ToDictionary(s => s.Step);
        return outcome.Evaluations.Select(e => (e.Step, Order: 1, Json: EvalLine(outcome, e)))
            .Concat(outcome.Updates.Select(u => (u.Step, Order: 0, Json: TrainLine(outcome, u, lags?.GetValueOrDefault(u.Step)))))
            .OrderBy(l => l.Step).ThenBy(l => l.Order)
            .Select(l => l.Json);
    }

    /// <summary>The keys every line starts with (<see cref="Header"/>): who and when, not measurements.</summary>
    public static IReadOnlySet<string> HeaderKeys { get; } = new HashSet<string> { "run_id", "label", "seed", "kind", "step" };

    public static IEnumerable<string> CsvLines(IReadOnlyList<RunOutcome> outcomes) =>
        outcomes.SelectMany(o => o.Evaluations.Select(e => string.Join(",",
                Csv(o.Spec.Label), Invariant(o.Spec.Seed), Invariant(e.Step),
                Invariant(e.MeanGoldReward), Invariant(e.GoldRewardStd), Invariant(e.Entropy))))
            .Prepend(CsvHeader);

    private static JsonObject EvalLine(RunOutcome outcome, PolicyEvaluated evaluation)
    {
        var line = Header(outcome, "eval", evaluation.Step);
        line["eval/gold_reward_mean"] = Number(evaluation.MeanGoldReward);
        line["eval/gold_reward_std"] = Number(evaluation.GoldRewardStd);
        line["eval/entropy"] = Number(evaluation.Entropy);
        line["eval/samples"] = evaluation.Samples;
        foreach (var (name, value) in evaluation.Metrics)
            line[name] = Number(value);
        return line;
    }

    private static JsonObject TrainLine(RunOutcome outcome, UpdateApplied update, StepLags? lags)
    {
        var line = Header(outcome, "train", update.Step);
        line["train/loss"] = Number(update.Loss);
        foreach (var (name, value) in update.Metrics)
            line[name] = Number(value);
        if (lags is not null)
        {
            line["stats/lag_min"] = lags.LagMin;
            line["stats/lag_mean"] = lags.LagMean;
            line["stats/lag_max"] = lags.LagMax;
        }
        return line;
    }

    private static JsonObject Header(RunOutcome outcome, string kind, int step) => new()
    {
        ["run_id"] = outcome.RunId.ToString(),
        ["label"] = outcome.Spec.Label,
        ["seed"] = outcome.Spec.Seed,
        ["kind"] = kind,
        ["step"] = step,
    };

    /// <summary>JSON has no NaN or infinity; a diverged value is written as null.</summary>
    private static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    private static string Csv(string text) =>
        text.IndexOfAny([',', '"', '\n', '\r']) < 0 ? text : $"\"{text.Replace("\"", "\"\"")}\"";
}

using System.Text.Json.Serialization;

namespace PrefTune.Storage.Events;

/// <summary>
/// Off-policy staleness and sample reuse over a whole run, from its <see cref="RunLedger"/>. Lag of a sample in a
/// gradient step = the learner's version before the step minus the version that sampled it (0 = on-policy).
/// Reuse of a sample = how many gradient steps used it. Names follow the ecosystem's stats/ metrics.
/// </summary>
public sealed record RunStaleness
{
    [JsonPropertyName("stats/lag_min")] public int LagMin { get; init; }
    [JsonPropertyName("stats/lag_mean")] public double LagMean { get; init; }
    [JsonPropertyName("stats/lag_max")] public int LagMax { get; init; }
    /// <summary>Lag → number of (step, sample) uses with that lag.</summary>
    public SortedDictionary<int, int> LagHistogram { get; init; } = [];
    /// <summary>Times a sample was used → number of samples used that often (0: drawn, never trained on).</summary>
    public SortedDictionary<int, int> ReuseHistogram { get; init; } = [];
    /// <summary>Importance ratios pi_theta / pi_old over every (step, sample) use; null when the Learner did not record them.</summary>
    public Quantiles? ImportanceRatio { get; init; }
    /// <summary>Over every (batch, sample) at hand-over: the learner's version minus the sampling version.</summary>
    [JsonPropertyName("stats/staleness_min")] public int StalenessMin { get; init; }
    [JsonPropertyName("stats/staleness_mean")] public double StalenessMean { get; init; }
    [JsonPropertyName("stats/staleness_max")] public int StalenessMax { get; init; }

    public static RunStaleness Of(RunLedger ledger)
    {
        var lags = ledger.Steps.SelectMany(s => s.Lags).ToList();
        var batches = ledger.Batches;
        var handedOver = batches.Sum(b => b.Samples);
        return new RunStaleness
        {
            LagMin = lags.Count == 0 ? 0 : lags.Min(),
            LagMean = lags.Count == 0 ? 0 : lags.Average(),
            LagMax = lags.Count == 0 ? 0 : lags.Max(),
            LagHistogram = Histogram(lags),
            ReuseHistogram = Histogram(ledger.Samples.Values.Select(s => s.Uses.Count)),
            ImportanceRatio = Quantiles.Of(ledger.Samples.Values.SelectMany(s => s.Uses).Select(u => u.ImportanceRatio).OfType<double>()),
            StalenessMin = batches.Count == 0 ? 0 : batches.Min(b => b.StalenessMin),
            StalenessMean = handedOver == 0 ? 0 : batches.Sum(b => b.StalenessMean * b.Samples) / handedOver,
            StalenessMax = batches.Count == 0 ? 0 : batches.Max(b => b.StalenessMax),
        };
    }

    private static SortedDictionary<int, int> Histogram(IEnumerable<int> values) =>
        new(values.GroupBy(v => v).ToDictionary(g => g.Key, g => g.Count()));
}

/// <summary>Order statistics of a set of values (linear interpolation between closest ranks).</summary>
public sealed record Quantiles
{
    public required int Count { get; init; }
    public required double Mean { get; init; }
    public required double Min { get; init; }
    public required double P05 { get; init; }
    public required double P25 { get; init; }
    public required double Median { get; init; }
    public required double P75 { get; init; }
    public required double P95 { get; init; }
    public required double Max { get; init; }

    /// <summary>Null for no finite values; non-finite ones are left out.</summary>
    public static Quantiles? Of(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length == 0) return null;
        double At(double p)
        {
            var rank = p * (sorted.Length - 1);
            var below = (int)Math.Floor(rank);
            var above = Math.Min(below + 1, sorted.Length - 1);
            return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
        }
        return new Quantiles
        {
            Count = sorted.Length, Mean = sorted.Average(),
            Min = sorted[0], P05 = At(0.05), P25 = At(0.25), Median = At(0.5), P75 = At(0.75), P95 = At(0.95), Max = sorted[^1],
        };
    }
}

using System.Text.Json.Nodes;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;
using Xunit;
using static PrefTune.Tests.Unit.Reporting.SyntheticRuns;

namespace PrefTune.Tests.Unit.Reporting;

public sealed class Writing_the_staleness_report : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private readonly string _folder = TempFolder();

    private static readonly IReadOnlyList<RunOutcome> Outcomes =
    [
        Run("dpo (online)", 1, 0.04, 0.3, 0.7),
        Run("dpo (online)", 2, 0.04, 0.2, 0.6),
        Run("best-of-n (offline)", 1, 0.04, 0.06, 0.1),
    ];

    /// <summary>Every sample drawn once every 4 steps and used by the 4 steps after it: lags 0..3.</summary>
    private static readonly IReadOnlyDictionary<Guid, RunLedger> Ledgers = Outcomes.ToDictionary(o => o.RunId, o => Ledger(o.Updates.Count));

    private static RunLedger Ledger(int steps)
    {
        var ledger = new RunLedger();
        for (var step = 1; step <= steps; step++)
        {
            var sampledAt = (step - 1) / 4 * 4;
            var ids = Enumerable.Range(0, 2).Select(_ => Guid.NewGuid()).ToList();
            foreach (var id in ids)
                ledger.Samples[id] = new SampleLedger { SampleId = id, SamplingVersion = sampledAt, Uses = [new SampleUse(step, 0, 0, step - 1, step - 1 - sampledAt, 0.0)] };
            ledger.Steps.Add(new StepLags
            {
                Step = step, BatchId = Guid.Empty, Pass = 0, Minibatch = 0, VersionBefore = step - 1, VersionAfter = step,
                SampleIds = ids, SamplingVersions = [sampledAt, sampledAt],
            });
        }
        return ledger;
    }

    [Fact]
    public void Adds_staleness_png_when_given_the_ledgers()
    {
        var files = RunReport.Write(_folder, Experiment(Outcomes), Outcomes, Ledgers);

        Assert.Equal(["metrics.jsonl", "metrics.csv", "summary.json", "gold_reward.png", "staleness.png"], files.Select(Path.GetFileName));
        var png = File.ReadAllBytes(files[4]);
        Assert.True(png.Length > 1000);
        Assert.Equal(PngSignature, png[..8]);
    }

    [Fact]
    public void Puts_the_lag_stats_next_to_the_histograms_in_summary_json()
    {
        var files = RunReport.Write(_folder, Experiment(Outcomes), Outcomes, Ledgers);

        var dpo = JsonNode.Parse(File.ReadAllText(files[2]))!["methods"]![0]!;
        var staleness = dpo["staleness"]!.AsArray();
        Assert.Equal(2, staleness.Count);                                              // one per run, in run_ids order
        Assert.Equal((0, 1.5, 3), ((int)staleness[0]!["stats/lag_min"]!, (double)staleness[0]!["stats/lag_mean"]!, (int)staleness[0]!["stats/lag_max"]!));
        Assert.Equal(20 * 2 / 4, (int)staleness[0]!["lag_histogram"]!["3"]!);
        Assert.Equal(20 * 2, (int)staleness[0]!["reuse_histogram"]!["1"]!);
        Assert.Equal(1.0, (double)staleness[0]!["importance_ratio"]!["median"]!);
    }

    [Fact]
    public void Gives_every_train_line_the_lag_of_its_samples()
    {
        var lines = MetricsWriter.JsonLines(Outcomes, Ledgers).Select(l => JsonNode.Parse(l)!.AsObject()).Where(l => (string?)l["kind"] == "train").ToList();

        Assert.All(lines, l => Assert.Equal((int)l["step"]! - 1 - ((int)l["step"]! - 1) / 4 * 4, (double)l["stats/lag_mean"]!));
    }

    [Fact]
    public void Leaves_staleness_out_without_the_ledgers()
    {
        var files = RunReport.Write(_folder, Experiment(Outcomes), Outcomes);

        Assert.DoesNotContain("staleness", File.ReadAllText(files[2]));
        Assert.False(File.Exists(Path.Combine(_folder, RunReport.StalenessPng)));
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }
}

using System.Buffers.Binary;
using System.Text.Json.Nodes;
using PrefTune.Orchestrator.Reporting;
using Xunit;
using static PrefTune.Tests.Unit.Reporting.SyntheticRuns;

namespace PrefTune.Tests.Unit.Reporting;

public sealed class Writing_a_run_report : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private readonly string _folder = TempFolder();

    private static readonly IReadOnlyList<Orchestrator.Runs.RunOutcome> Outcomes =
    [
        Run("dpo (online)", 1, 0.04, 0.3, 0.7, 0.9),
        Run("dpo (online)", 2, 0.04, 0.2, 0.6, 0.95),
        Run("best-of-n (offline)", 1, 0.04, 0.06, 0.1, 0.15),
    ];

    [Fact]
    public void Writes_the_four_files_into_a_new_folder()
    {
        var files = RunReport.Write(_folder, Experiment(Outcomes), Outcomes);

        Assert.Equal(["metrics.jsonl", "metrics.csv", "summary.json", "gold_reward.png"], files.Select(Path.GetFileName));
        Assert.All(files, f => Assert.True(File.Exists(f), f));
        Assert.Equal(3 * (4 + 30), File.ReadAllLines(files[0]).Length);
        Assert.Equal(1 + 3 * 4, File.ReadAllLines(files[1]).Length);
        Assert.Equal(2, JsonNode.Parse(File.ReadAllText(files[2]))!["methods"]!.AsArray().Count);
    }

    [Fact]
    public void Draws_a_900_by_500_png()
    {
        var png = RunReport.Write(_folder, Experiment(Outcomes), Outcomes)[3];
        var bytes = File.ReadAllBytes(png);

        Assert.Equal(PngSignature, bytes[..8]);
        Assert.Equal(900, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)));
        Assert.Equal(500, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4)));
    }

    [Fact]
    public void Draws_a_plot_even_without_evaluations()
    {
        var empty = Outcomes[0] with { Evaluations = [] };
        var png = Path.Combine(_folder, "empty.png");
        Directory.CreateDirectory(_folder);

        GoldRewardPlot.Write(png, "nothing evaluated", [empty]);

        Assert.Equal(PngSignature, File.ReadAllBytes(png)[..8]);
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }
}

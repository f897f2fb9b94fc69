using PrefTune.Training.Tasks.Length;
using ScottPlot;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>A preference dataset's response lengths as bars (one per bin of <see cref="LengthHistogram"/>): where the
/// data covers the reference, which the Skew Length task is about.</summary>
public static class LengthHistogramPlot
{
    public static void Save(LengthHistogram histogram, string goal, string pngPath)
    {
        var plot = new Plot();
        // each bar at its bin's centre, as wide as the bin
        var centres = histogram.Counts.Select((_, i) => (i + 0.5) * histogram.BinWidth).ToArray();
        var bars = plot.Add.Bars(centres, histogram.Counts.Select(c => (double)c).ToArray());
        foreach (var bar in bars.Bars) bar.Size = histogram.BinWidth * 0.9;
        plot.Title($"response lengths of the preference data (goal {goal})");
        plot.XLabel("response length (tokens)");
        plot.YLabel("responses");
        plot.SavePng(pngPath, GoldRewardPlot.Width, GoldRewardPlot.Height);
    }
}

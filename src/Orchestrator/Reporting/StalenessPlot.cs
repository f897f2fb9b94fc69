using PrefTune.Storage.Events;
using ScottPlot;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// Staleness and reuse per method label (one row each, seeds pooled): the lag histogram, the reuse histogram,
/// and the lag of each gradient step's samples (mean line, band from min to max) against gradient steps.
/// </summary>
public static class StalenessPlot
{
    public const int Width = 1500;
    public const int RowHeight = 320;

    public static void Write(string pngPath, string title, IReadOnlyList<(string Label, IReadOnlyList<RunLedger> Runs)> series)
    {
        var multiplot = new Multiplot();
        multiplot.AddPlots(3 * Math.Max(1, series.Count));
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(Math.Max(1, series.Count), 3);
        foreach (var ((label, runs), row) in series.Select((s, i) => (s, i)))
        {
            var staleness = runs.Select(r => r.Staleness()).ToList();
            var prefix = row == 0 ? title + "\n" : "";
            Histogram(multiplot.GetPlot(3 * row), $"{prefix}{label}: lag", "lag (policy versions)", "(step, sample) uses",
                Pool(staleness.Select(s => s.LagHistogram)));
            Histogram(multiplot.GetPlot(3 * row + 1), $"{label}: reuse", "times a sample was used", "samples",
                Pool(staleness.Select(s => s.ReuseHistogram)));
            LagOverSteps(multiplot.GetPlot(3 * row + 2), $"{label}: lag per gradient step", runs);
        }
        multiplot.SavePng(pngPath, Width, RowHeight * Math.Max(1, series.Count));
    }

    private static void Histogram(Plot plot, string title, string x, string y, SortedDictionary<int, int> histogram)
    {
        if (histogram.Count > 0)
        {
            plot.Add.Bars(histogram.Keys.Select(k => (double)k).ToArray(), histogram.Values.Select(v => (double)v).ToArray());
            // from 0 on, one tick per whole number: a lone bar at 2 must not read as "1.6 to 2.4"
            plot.Axes.SetLimits(Math.Min(0, histogram.Keys.First()) - 0.75, histogram.Keys.Last() + 0.75, 0, histogram.Values.Max() * 1.1);
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
    }

    private static void LagOverSteps(Plot plot, string title, IReadOnlyList<RunLedger> runs)
    {
        var byStep = runs.SelectMany(r => r.Steps).Where(s => s.SamplingVersions.Count > 0).GroupBy(s => s.Step).OrderBy(g => g.Key).ToList();
        if (byStep.Count > 0)
        {
            var steps = byStep.Select(g => (double)g.Key).ToArray();
            var band = plot.Add.FillY(steps, byStep.Select(g => (double)g.Min(s => s.LagMin)).ToArray(), byStep.Select(g => (double)g.Max(s => s.LagMax)).ToArray());
            band.FillColor = Colors.SteelBlue.WithAlpha(0.25);
            band.LineWidth = 0;
            band.LegendText = "min to max";
            var mean = plot.Add.Scatter(steps, byStep.Select(g => g.Average(s => s.LagMean)).ToArray(), Colors.SteelBlue);
            mean.LegendText = "mean";
            mean.LineWidth = 2;
            plot.ShowLegend(Alignment.UpperLeft);
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Title(title);
        plot.XLabel("gradient steps");
        plot.YLabel("lag (policy versions)");
    }

    private static SortedDictionary<int, int> Pool(IEnumerable<SortedDictionary<int, int>> histograms) =>
        new(histograms.SelectMany(h => h).GroupBy(h => h.Key).ToDictionary(g => g.Key, g => g.Sum(h => h.Value)));
}

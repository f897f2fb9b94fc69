using PrefTune.Training.Toy;
using ScottPlot;

namespace PrefTune.Orchestrator.Toy;

/// <summary>
/// The paper's toy figure: per category four bars, p0, the target q, and p after descending KL(p||q) and
/// after descending KL(q||p), each labelled with its value.
/// </summary>
public static class ModeSeekingPlot
{
    public const int Width = 900;
    public const int Height = 500;

    private const double BarWidth = 0.2;

    /// <summary>Above this many categories the bars are too narrow for value labels and long tick labels.</summary>
    private const int LabelledCategories = 8;

    public static void Write(string pngPath, string title, ToyResult result)
    {
        var series = new (string Legend, IReadOnlyList<double> Values, Color Color)[]
        {
            ("p0", result.Spec.P0, Color.FromHex("#b0b0b0")),
            ("q (target)", result.Spec.Q, Color.FromHex("#404040")),
            ($"after descending {result.KlPToQ.Name} ({result.KlPToQ.Objective.Behaviour()})", result.KlPToQ.Final, Color.FromHex("#d62728")),
            ($"after descending {result.KlQToP.Name} ({result.KlQToP.Objective.Behaviour()})", result.KlQToP.Final, Color.FromHex("#1f77b4")),
        };

        var plot = new Plot();
        var categories = result.Spec.P0.Count;
        var labelled = categories <= LabelledCategories;
        var bars = new List<Bar>();
        foreach (var ((legend, values, color), s) in series.Select((e, s) => (e, s)))
        {
            var offset = (s - (series.Length - 1) / 2.0) * BarWidth;
            bars.AddRange(values.Select((value, k) => new Bar
            {
                Position = k + offset, Value = value, Size = BarWidth * 0.9, FillColor = color, LineWidth = 0,
                Label = labelled ? value.ToString("0.000") : "",
            }));
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = legend, FillColor = color });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 10;

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, categories).Select(k => (double)k).ToArray(),
            Enumerable.Range(0, categories).Select(k => labelled ? $"category {k}" : $"{k}").ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.SetLimitsX(-0.6, categories - 0.4);
        plot.Axes.SetLimitsY(0, series.Max(e => e.Values.Max()) * 1.2);   // room for the value labels and the legend
        plot.HideGrid();
        plot.Title(title);
        plot.YLabel("probability");
        if (!labelled)
            plot.XLabel("category");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(pngPath, Width, Height);
    }
}

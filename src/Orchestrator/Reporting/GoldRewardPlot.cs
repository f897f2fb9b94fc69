using PrefTune.Orchestrator.Runs;
using ScottPlot;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// The paper's bandit figure: mean gold reward of the policy's samples against gradient steps, one line per
/// method label (mean over seeds, shaded from the lowest to the highest seed), and the reference policy dashed.
/// </summary>
public static class GoldRewardPlot
{
    public const int Width = 900;
    public const int Height = 500;

    public static void Write(string pngPath, string title, IReadOnlyList<RunOutcome> outcomes) =>
        Write(pngPath, title, outcomes.GroupBy(o => o.Spec.Label).Select(g => (g.Key, (IReadOnlyList<RunOutcome>)g.ToList())).ToList());

    /// <summary>One line per named series (e.g. a study's methods, or a sweep's values), each the mean over its runs.</summary>
    public static void Write(string pngPath, string title, IReadOnlyList<(string Name, IReadOnlyList<RunOutcome> Runs)> series)
    {
        var plot = new Plot();
        if (series.Count > 10)
            plot.Add.Palette = new ScottPlot.Palettes.Category20();   // the default has 10 colours
        var outcomes = series.SelectMany(s => s.Runs).ToList();
        foreach (var ((name, runs), i) in series.Select((s, i) => (s, i)))
        {
            var curve = Curve.Of(runs);
            if (curve.Steps.Length == 0)
                continue;
            var color = plot.Add.Palette.GetColor(i);
            if (runs.Count > 1)
            {
                var band = plot.Add.FillY(curve.Steps, curve.Min, curve.Max);
                band.FillColor = color.WithAlpha(0.2);
                band.LineWidth = 0;
            }
            var line = plot.Add.ScatterLine(curve.Steps, curve.Mean, color);
            line.LineWidth = 2;
            line.LegendText = name;
        }

        if (ReferenceReward(outcomes) is { } reference)
        {
            var line = plot.Add.HorizontalLine(reference, width: 1.5f, color: Colors.Gray, pattern: LinePattern.Dashed);
            line.LegendText = "reference";
        }

        plot.Title(title);
        plot.XLabel("gradient steps");
        plot.YLabel("mean gold reward");
        if (series.Count > 6)
            plot.ShowLegend(Edge.Right);   // many lines: keep the legend off them
        else
            plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(pngPath, series.Count > 6 ? Width + 250 : Width, Height);
    }

    /// <summary>The step-0 evaluation (the reference policy), averaged over every run that has one.</summary>
    private static double? ReferenceReward(IReadOnlyList<RunOutcome> outcomes)
    {
        var initial = outcomes.SelectMany(o => o.Evaluations.Where(e => e.Step == 0)).Select(e => e.MeanGoldReward).ToList();
        return initial.Count == 0 ? null : initial.Average();
    }

    /// <summary>A label's gold reward per evaluated step: mean, lowest and highest over the seeds evaluated there.</summary>
    private sealed record Curve(double[] Steps, double[] Mean, double[] Min, double[] Max)
    {
        public static Curve Of(IEnumerable<RunOutcome> runs)
        {
            var byStep = runs.SelectMany(r => r.Evaluations)
                .Where(e => double.IsFinite(e.MeanGoldReward))
                .GroupBy(e => e.Step, e => e.MeanGoldReward)
                .OrderBy(g => g.Key)
                .ToList();
            return new Curve(
                byStep.Select(g => (double)g.Key).ToArray(),
                byStep.Select(g => g.Average()).ToArray(),
                byStep.Select(g => g.Min()).ToArray(),
                byStep.Select(g => g.Max()).ToArray());
        }
    }
}

using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using ScottPlot;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// The paper's figures: an evaluation metric of the policy's samples against gradient steps, one line per method label
/// (mean over seeds, shaded from the lowest to the highest seed), and the reference policy (step 0) dashed. The mean
/// gold reward by default (the bandit figure); the mean response length for the length tasks.
/// </summary>
public static class GoldRewardPlot
{
    /// <summary>What a plot shows of each evaluation; null where an evaluation does not have it.</summary>
    public sealed record Metric(string YLabel, Func<PolicyEvaluated, double?> Of);

    public static Metric GoldReward { get; } = new("mean gold reward", e => e.MeanGoldReward);

    /// <summary>TRL's completions/mean_length: tokens per response, the stop token not counted.</summary>
    public static Metric MeanLength { get; } = new("mean response length (tokens)",
        e => e.Metrics.TryGetValue("eval/completions/mean_length", out var v) ? v : null);

    /// <summary>Goal mode's figure: the mean of |length - mode| over the evaluation's samples, which is minus its gold reward.</summary>
    public static Metric DistanceToMode { get; } = new("mean distance to the mode length (tokens)", e => -e.MeanGoldReward);

    /// <summary>The paper's view of a length task: Min and Skew Length plot the mean length, Mode Length the distance to the mode.</summary>
    public static Metric ForLengthGoal(string? goal) => goal == "mode" ? DistanceToMode : MeanLength;

    public const int Width = 900;
    public const int Height = 500;

    public static void Write(string pngPath, string title, IReadOnlyList<RunOutcome> outcomes, Metric? metric = null) =>
        Write(pngPath, title, outcomes.GroupBy(o => o.Spec.Label).Select(g => (g.Key, (IReadOnlyList<RunOutcome>)g.ToList())).ToList(), metric);

    /// <summary>One line per named series (e.g. a study's methods, or a sweep's values), each the mean over its runs.</summary>
    public static void Write(string pngPath, string title, IReadOnlyList<(string Name, IReadOnlyList<RunOutcome> Runs)> series, Metric? metric = null)
    {
        var plot = new Plot();
        Draw(plot, title, series, metric ?? GoldReward);
        plot.SavePng(pngPath, series.Count > 6 ? Width + 250 : Width, Height);
    }

    /// <summary>Panels side by side in one image (the paper's multi-task figures), each drawn as <see cref="Write(string, string, IReadOnlyList{ValueTuple{string, IReadOnlyList{RunOutcome}}}, Metric?)"/> draws one.</summary>
    public static void WritePanels(string pngPath, IReadOnlyList<(string Title, IReadOnlyList<(string Name, IReadOnlyList<RunOutcome> Runs)> Series, Metric Metric)> panels)
    {
        var figure = new Multiplot();
        figure.RemovePlot(figure.GetPlot(0));   // it starts with an empty one
        foreach (var (title, series, metric) in panels)
        {
            var plot = new Plot();
            Draw(plot, title, series, metric);
            figure.AddPlot(plot);
        }
        figure.Layout = new ScottPlot.MultiplotLayouts.Columns();
        figure.SavePng(pngPath, Math.Max(1, panels.Count) * 620, Height + 60);
    }

    private static void Draw(Plot plot, string title, IReadOnlyList<(string Name, IReadOnlyList<RunOutcome> Runs)> series, Metric metric)
    {
        if (series.Count > 10)
            plot.Add.Palette = new ScottPlot.Palettes.Category20();   // the default has 10 colours
        var outcomes = series.SelectMany(s => s.Runs).ToList();
        foreach (var ((name, runs), i) in series.Select((s, i) => (s, i)))
        {
            var curve = Curve.Of(runs, metric);
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

        if (ReferenceValue(outcomes, metric) is { } reference)
        {
            var line = plot.Add.HorizontalLine(reference, width: 1.5f, color: Colors.Gray, pattern: LinePattern.Dashed);
            line.LegendText = "reference";
        }

        plot.Title(title);
        plot.XLabel("gradient steps");
        plot.YLabel(metric.YLabel);
        if (series.Count > 6)
            plot.ShowLegend(Edge.Right);   // many lines: keep the legend off them
        else
            plot.ShowLegend(metric == GoldReward ? Alignment.UpperLeft : Alignment.UpperRight);   // lengths fall: keep the legend off the start
    }

    /// <summary>The step-0 evaluation (the reference policy), averaged over every run that has one.</summary>
    private static double? ReferenceValue(IReadOnlyList<RunOutcome> outcomes, Metric metric)
    {
        var initial = outcomes.SelectMany(o => o.Evaluations.Where(e => e.Step == 0)).Select(metric.Of).OfType<double>().ToList();
        return initial.Count == 0 ? null : initial.Average();
    }

    /// <summary>A label's metric per evaluated step: mean, lowest and highest over the seeds evaluated there.</summary>
    private sealed record Curve(double[] Steps, double[] Mean, double[] Min, double[] Max)
    {
        public static Curve Of(IEnumerable<RunOutcome> runs, Metric metric)
        {
            var byStep = runs.SelectMany(r => r.Evaluations)
                .Select(e => (e.Step, Value: metric.Of(e)))
                .Where(e => e.Value is { } v && double.IsFinite(v))
                .GroupBy(e => e.Step, e => e.Value!.Value)
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

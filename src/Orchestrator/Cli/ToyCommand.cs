using System.ComponentModel;
using PrefTune.Orchestrator.Toy;
using PrefTune.Training.Toy;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune toy FILE`: the mode-seeking toy (PAPER.md), KL(p||q) against KL(q||p) on a categorical, exactly
/// and in-process (no services, no database). Prints the final distributions and writes toy.json and toy.png.
/// </summary>
public sealed class ToyCommand : Command<ToyCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<EXPERIMENT>")]
        [Description("Toy file (kind: mode-seeking-toy), e.g. experiments/toy-kl.yaml")]
        public string Experiment { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print toy.json on stdout instead of the table.")]
        public bool Json { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Report folder. Default: out/<name>-<timestamp>")]
        public string? Output { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var experiment = ToyExperimentFile.Load(settings.Experiment);
        var output = settings.Output ?? Path.Combine("out", $"{experiment.Name}-{DateTime.Now:yyyyMMdd-HHmmss}");
        OutputFolder.EnsureWritable(output);
        var result = ModeSeekingToy.Run(experiment.Toy);
        var files = ToyReport.Write(output, experiment, result);
        if (settings.Json)
        {
            Console.WriteLine(ToyReport.ToJson(experiment, result, output));
            return 0;
        }

        var spec = experiment.Toy;
        var table = new Table().AddColumns("category", "p0", "q", $"after {result.KlPToQ.Name}", $"after {result.KlQToP.Name}");
        table.Title = new TableTitle(Markup.Escape($"{experiment.Name}: lr {spec.LearningRate}, {spec.Steps} gradient steps on the logits"));
        for (var k = 0; k < spec.P0.Count; k++)
            table.AddRow(k.ToString(), $"{spec.P0[k]:0.000}", $"{spec.Q[k]:0.000}",
                $"{result.KlPToQ.Final[k]:0.000}", $"{result.KlQToP.Final[k]:0.000}");
        AnsiConsole.Write(table);
        foreach (var t in result.Trajectories)
            AnsiConsole.MarkupLineInterpolated($"{t.Name} ({t.Objective.Behaviour()}): {t.Points[0].Kl:0.0000} at p0, {t.Points[^1].Kl:0.0000} after {spec.Steps} steps");
        AnsiConsole.MarkupLineInterpolated($"[grey]report in {output}: {string.Join(", ", files.Select(Path.GetFileName))}[/]");
        return 0;
    }
}

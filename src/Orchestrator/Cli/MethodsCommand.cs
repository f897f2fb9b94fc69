using PrefTune.Training.Methods;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune methods`: the paper's Table 1, printed from the method registry itself.</summary>
/// <remarks>
/// The axes are a table narrow enough for 80 columns (what Spectre.Console assumes in a pipe); each method's summary
/// and hyperparameters follow as wrapped text, since as table columns they were squeezed to a word per line.
/// </remarks>
public sealed class MethodsCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        var table = new Table().AddColumn(new TableColumn("method").NoWrap()).AddColumns("on-policy sampling", "offline data", "sample reuse", "negative gradient");
        foreach (var method in MethodRegistry.All)
        {
            static string Mark(bool on) => on ? "yes" : "no";
            table.AddRow(method.Name, Mark(method.Axes.OnPolicySampling), Mark(method.Axes.OfflineData),
                Mark(method.Axes.SampleReuse), Mark(method.Axes.NegativeGradient));
        }
        AnsiConsole.Write(table);
        foreach (var method in MethodRegistry.All)
        {
            var parameters = method.Defaults.Count == 0 ? "no hyperparameters" : string.Join(", ", method.Defaults.Select(d => $"{d.Key}={d.Value}"));
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Markup($"[bold]{Markup.Escape(method.Name)}[/] ({Markup.Escape(parameters)})"));
            AnsiConsole.WriteLine();
            AnsiConsole.Write(new Padder(new Text(method.Summary), new Padding(2, 0, 0, 0)));
        }
        return 0;
    }
}

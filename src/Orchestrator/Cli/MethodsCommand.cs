using PrefTune.Training.Methods;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune methods`: the paper's Table 1, printed from the method registry itself.</summary>
public sealed class MethodsCommand : Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        var table = new Table().AddColumns("method", "on-policy sampling", "offline data", "sample reuse", "negative gradient", "hyperparameters", "summary");
        foreach (var method in MethodRegistry.All)
        {
            static string Mark(bool on) => on ? "yes" : "no";
            table.AddRow(
                method.Name,
                Mark(method.Axes.OnPolicySampling),
                Mark(method.Axes.OfflineData),
                Mark(method.Axes.SampleReuse),
                Mark(method.Axes.NegativeGradient),
                Markup.Escape(string.Join(", ", method.Defaults.Select(d => $"{d.Key}={d.Value}"))),
                Markup.Escape(method.Summary));
        }
        AnsiConsole.Write(table);
        return 0;
    }
}

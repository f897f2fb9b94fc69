using System.Text.Json.Nodes;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;
using TorchSharp;

namespace PrefTune.Orchestrator.Reporting;

/// <summary>
/// `--report-to tensorboard`: the runs' metrics as TensorBoard event files beside metrics.jsonl, one folder per run
/// under <c>tensorboard/</c> (<c>{label}-seed{seed}</c>, so TensorBoard overlays the methods), written with TorchSharp's
/// SummaryWriter. The scalars are metrics.jsonl's lines, the same names (TRL's) and steps: one source for both.
/// </summary>
public static class TensorBoardReport
{
    public const string Folder = "tensorboard";

    /// <summary>`--report-to`'s help, for every command that writes a report.</summary>
    public const string OptionHelp = "Also report to: tensorboard (event files under tensorboard/ in the report folder, one folder per run), or none. Default: none";

    /// <summary>The report destinations `--report-to` accepts beside the files always written.</summary>
    public static IReadOnlyList<string> Destinations { get; } = ["none", "tensorboard"];

    /// <summary>Checks a `--report-to` value; returns whether it asks for TensorBoard.</summary>
    public static bool Wanted(string? reportTo) => reportTo switch
    {
        null or "none" => false,
        "tensorboard" => true,
        _ => throw new ArgumentException($"--report-to: '{reportTo}' is not one of {string.Join(", ", Destinations)}"),
    };

    /// <returns>The folder written (<see cref="Folder"/> under <paramref name="folder"/>), one subfolder per run.</returns>
    public static string Write(string folder, IReadOnlyList<RunOutcome> outcomes, IReadOnlyDictionary<Guid, RunLedger>? ledgers = null)
    {
        var written = new List<string>();
        foreach (var outcome in outcomes)
        {
            var name = Safe($"{outcome.Spec.Label}-seed{outcome.Spec.Seed}");
            // two runs of one label and seed (a study's sweep) get folders of their own
            var runFolder = Path.Combine(folder, Folder, written.Contains(Path.Combine(folder, Folder, name)) ? $"{name}-{outcome.RunId.ToString()[..8]}" : name);
            Directory.CreateDirectory(runFolder);
            var writer = torch.utils.tensorboard.SummaryWriter(runFolder);
            foreach (var line in MetricsWriter.Lines(outcome, ledgers))
            {
                var step = (int)line["step"]!;
                foreach (var (tag, value) in line)
                    if (!MetricsWriter.HeaderKeys.Contains(tag) && value is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number)
                        writer.add_scalar(tag, float.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture), step);
            }
            written.Add(runFolder);
        }
        return Path.Combine(folder, Folder);
    }

    /// <summary>A label as a folder name: letters, digits and - . _ kept, anything else (spaces, parentheses, /) as _.</summary>
    private static string Safe(string name) =>
        new(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' or '_' ? c : '_').ToArray());
}

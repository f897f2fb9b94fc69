using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training.Methods;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune replay RUN`: rebuild the run's Learner trajectory from its recorded batches and compare every
/// checkpoint hash. `preftune replay RUN --method NAME [--set key=value]`: train another method on exactly the
/// same recorded samples, as a new run linked to the source, so two losses can be compared on identical data.
/// </summary>
public sealed class ReplayCommand : AsyncCommand<ReplayCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run id, or a unique prefix or suffix of it (see `preftune runs`).")]
        public string Run { get; init; } = "";

        [CommandOption("--method <NAME>")]
        [Description("Train this method on the run's recorded samples instead (a counterfactual run; see `preftune methods`).")]
        public string? Method { get; init; }

        [CommandOption("--set <KEY=VALUE>")]
        [Description("With --method: a hyperparameter of that method (e.g. beta=0.05), or learning_rate. Repeatable.")]
        public string[] Set { get; init; } = [];

        [CommandOption("--json")]
        [Description("Print the result as JSON on stdout.")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Method is null && settings.Set.Length > 0)
            throw new ArgumentException("--set: only a counterfactual replay (--method NAME) takes hyperparameters");
        var options = settings.ToOptions();
        await using var session = await PipelineSession.StartAsync(options, settings.Hosting(options), cancellationToken);
        var runId = await RunIds.ResolveAsync(session.Store, settings.Run, cancellationToken);
        var recorded = await RecordedRun.LoadAsync(session.Store, runId, cancellationToken)
            ?? throw new ArgumentException($"run: no events recorded for run {runId}");
        return settings.Method is null
            ? await ReplayExactlyAsync(session, recorded, settings.Json, cancellationToken)
            : await ReplayWithAsync(session, recorded, Counterfactual(recorded.Started.Spec, settings.Method, settings.Set), settings.Json, cancellationToken);
    }

    private static async Task<int> ReplayExactlyAsync(PipelineSession session, RecordedRun recorded, bool json, CancellationToken ct)
    {
        var caveats = RunEnvironment.Differences(recorded.Started.Environment, recorded.Started.Spec.TorchThreads);
        if (!json)
            foreach (var caveat in caveats)
                AnsiConsole.MarkupLineInterpolated($"[yellow]this replay cannot promise identical hashes: {caveat}[/]");
        var report = await session.ReplayExactlyAsync(recorded, ct);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                report.RunId, report.Exact, Compared = report.Checkpoints.Count, report.Matched,
                FirstMismatch = report.Checkpoints.FirstOrDefault(c => !c.Matches)?.Version,
                report.Caveats, ReplaySeconds = report.Elapsed.TotalSeconds, OriginalSeconds = report.Original.TotalSeconds,
                report.Checkpoints,
            }, ShowCommand.Json));
        }
        else
        {
            var mismatch = report.Checkpoints.FirstOrDefault(c => !c.Matches);
            AnsiConsole.MarkupLineInterpolated($"replayed run {report.RunId}: {report.Matched} of {report.Checkpoints.Count} checkpoint hashes identical in {report.Elapsed.TotalSeconds:0.0} s (the run took {report.Original.TotalSeconds:0.0} s with sampling, scoring and evaluation)");
            if (mismatch is not null)
                AnsiConsole.MarkupLineInterpolated($"[red]first difference at version {mismatch.Version}: recorded {mismatch.Recorded[..12]}, replayed {mismatch.Replayed[..12]}[/]");
        }
        return report.Exact ? 0 : 1;
    }

    private static async Task<int> ReplayWithAsync(PipelineSession session, RecordedRun recorded, RunSpec spec, bool json, CancellationToken ct)
    {
        var outcome = await session.ReplayAsync(spec, recorded, null, ct);
        var sourceFinal = recorded.Evaluations.LastOrDefault()?.MeanGoldReward;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                outcome.RunId, ReplayOf = recorded.Started.RunId, outcome.Spec.Label, Method = outcome.Spec.Method.Name, outcome.Status,
                outcome.FailureReason, outcome.GradientSteps, FinalGoldReward = outcome.FinalGoldReward, SourceFinalGoldReward = sourceFinal,
            }, ShowCommand.Json));
        }
        else
        {
            AnsiConsole.MarkupLineInterpolated($"run {outcome.RunId}: {spec.Method.Name} on the {recorded.Assembled.Count} recorded batches of run {recorded.Started.RunId}: {outcome.Status}");
            AnsiConsole.MarkupLineInterpolated($"final gold reward {outcome.FinalGoldReward:0.000} against {sourceFinal:0.000} for {recorded.Started.Spec.Label} on the same samples");
            if (outcome.FailureReason is not null)
                AnsiConsole.MarkupLineInterpolated($"[red]{outcome.FailureReason}[/]");
        }
        return outcome.Status == "completed" ? 0 : 1;
    }

    /// <summary>The source run's spec with another method (and its --set hyperparameters), on the source's data.</summary>
    public static RunSpec Counterfactual(RunSpec source, string method, IReadOnlyList<string> assignments)
    {
        var descriptor = MethodRegistry.Get(method);
        if (!descriptor.Axes.Supports(source.Method.Data))
            throw new ArgumentException($"--method {method}: it cannot train on the run's {source.Method.Data.ToString().ToLowerInvariant()} data (see `preftune methods`)");
        var parameters = new Dictionary<string, double>();
        var loop = source.Loop;
        foreach (var assignment in assignments)
        {
            var parts = assignment.Split('=', 2);
            if (parts.Length != 2 || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                throw new ArgumentException($"--set {assignment}: expected key=number, e.g. beta=0.05");
            var key = parts[0].Trim();
            if (key == "learning_rate")
                loop = loop with { LearningRate = value };
            else if (descriptor.Defaults.ContainsKey(key))
                parameters[key] = value;
            else
                throw new ArgumentException($"--set {key}: {method} has no such hyperparameter; it has: {string.Join(", ", descriptor.Defaults.Keys.Append("learning_rate"))}");
        }
        // The experiment file's own rules, so that --set learning_rate=-1 is refused as loop.learning_rate: -1 is, before any run is recorded.
        var reader = new DocumentReader();
        ExperimentRules.Check(loop, ExperimentRules.Loop, keys => keys[0], reader);
        ExperimentRules.CheckParameters(method, parameters, name => name, reader);
        if (reader.Problems.Count > 0)
            throw new ArgumentException(string.Join(Environment.NewLine, reader.Problems.Select(p => p.Describe("--set"))));
        var data = source.Method.Data;
        return source with
        {
            Label = $"{method} (replay of {source.Label})",
            Method = new MethodSpec { Name = method, Data = data, Parameters = parameters },
            Loop = loop,
        };
    }
}

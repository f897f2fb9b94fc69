using System.ComponentModel;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune run FILE`: every (method, seed) of an experiment as one recorded run each, then the report.</summary>
public sealed class RunCommand : AsyncCommand<RunCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "<EXPERIMENT>")]
        [Description("Experiment file (YAML or JSON), e.g. experiments/bandit-peak70.yaml")]
        public string Experiment { get; init; } = "";

        [CommandOption("--json")]
        [Description("Print the summary as JSON on stdout (no progress display).")]
        public bool Json { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Report folder. Default: out/<experiment>-<timestamp>")]
        public string? Output { get; init; }

        [CommandOption("--report-to <WHERE>")]
        [Description(TensorBoardReport.OptionHelp)]
        public string? ReportTo { get; init; }

        [CommandOption("--resume")]
        [Description("Continue the file as a whole: keep its completed runs, resume its stopped, failed or abandoned ones, start missing ones, then write the report.")]
        public bool Resume { get; init; }

    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var experiment = ExperimentFile.Load(settings.Experiment);
        var options = settings.ToOptions();
        var hosting = settings.Hosting(options);
        var output = settings.Output ?? Path.Combine("out", $"{experiment.Name}-{DateTime.Now:yyyyMMdd-HHmmss}");
        OutputFolder.EnsureWritable(output);
        var tensorBoard = TensorBoardReport.Wanted(settings.ReportTo);

        await using var session = await PipelineSession.StartAsync(options, hosting, cancellationToken);
        var plan = settings.Resume ? await ResumePlan.PlanAsync(session.Store, experiment, cancellationToken) : null;
        var outcomes = settings.Json
            ? await RunAllAsync(session, experiment, plan, null, cancellationToken)
            : await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var bars = experiment.Runs.ToDictionary(r => r, r => progress.AddTask(Markup.Escape($"{r.Label} seed {r.Seed}"), maxValue: r.Loop.GradientSteps));
                    return await RunAllAsync(session, experiment, plan, spec => new Progress<RunProgress>(p =>
                    {
                        bars[spec].Value = p.Step;
                        bars[spec].Description = Markup.Escape($"{p.Label} seed {spec.Seed}: gold {p.GoldReward:0.000}");
                    }), cancellationToken);
                });

        var ledgers = new Dictionary<Guid, Storage.Events.RunLedger>();
        foreach (var outcome in outcomes)
            ledgers[outcome.RunId] = await RunHistory.LoadLedgerAsync(session.Store, outcome.RunId, cancellationToken);
        var files = RunReport.Write(output, experiment, outcomes, ledgers);
        if (tensorBoard) files = [.. files, TensorBoardReport.Write(output, outcomes, ledgers)];
        var summary = new SummaryReport(experiment, outcomes, ledgers);
        if (settings.Json)
        {
            Console.WriteLine(summary.ToJson(output));
        }
        else
        {
            AnsiConsole.Write(summary.Render());
            foreach (var line in summary.RunLines())
                AnsiConsole.WriteLine(line);
            AnsiConsole.MarkupLineInterpolated($"[grey]transport {session.Transport}; report in {output}: {string.Join(", ", files.Select(Path.GetFileName))}[/]");
            foreach (var failed in outcomes.Where(o => o.Status != "completed"))
                AnsiConsole.MarkupLineInterpolated($"[red]{failed.Spec.Label} seed {failed.Spec.Seed} failed: {failed.FailureReason}[/]");
        }
        return outcomes.All(o => o.Status == "completed") ? 0 : 1;
    }

    private static async Task<List<RunOutcome>> RunAllAsync(PipelineSession session, Experiment experiment, ResumePlan? plan,
        Func<Messages.RunSpec, IProgress<RunProgress>>? progressFor, CancellationToken ct)
    {
        var outcomes = new List<RunOutcome>();
        foreach (var spec in experiment.Runs)
            outcomes.Add(await (plan is null ? session.RunAsync(spec, progressFor?.Invoke(spec), ct) : plan.RunAsync(session, spec, progressFor?.Invoke(spec), ct)));
        return outcomes;
    }
}

using System.ComponentModel;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune study FILE`: every cell of a study (rewards × methods × seeds, plus sweeps) as one recorded run each,
/// linked by the study's own stream; then the report, written from the recorded runs.
/// </summary>
public sealed class StudyCommand : AsyncCommand<StudyCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "<STUDY>")]
        [Description("Study file (YAML or JSON, kind: study), e.g. experiments/study-bandit.yaml")]
        public string Study { get; init; } = "";

        [CommandOption("--report-to <WHERE>")]
        [Description(TensorBoardReport.OptionHelp)]
        public string? ReportTo { get; init; }

        [CommandOption("--json")]
        [Description("Print summary.json on stdout (no progress display).")]
        public bool Json { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Report folder. Default: out/<study>-<timestamp>")]
        public string? Output { get; init; }

        [CommandOption("--resume")]
        [Description("Continue the file as a whole: keep its completed runs, resume its stopped, failed or abandoned ones, start missing ones, then write the report.")]
        public bool Resume { get; init; }

    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var study = StudyFile.Load(settings.Study);
        var sourceText = await File.ReadAllTextAsync(settings.Study, cancellationToken);
        var options = settings.ToOptions();
        var hosting = settings.Hosting(options);
        var output = settings.Output ?? Path.Combine("out", $"{study.Name}-{DateTime.Now:yyyyMMdd-HHmmss}");
        OutputFolder.EnsureWritable(output);
        var tensorBoard = TensorBoardReport.Wanted(settings.ReportTo);

        await using var session = await PipelineSession.StartAsync(options, hosting, cancellationToken);
        var runner = new StudyRunner(session);
        Action<string>? log = settings.Json ? null : line => AnsiConsole.MarkupLineInterpolated($"[grey]{line}[/]");
        log?.Invoke(StudyPlan.Describe(study));
        if (log is not null)
            log(await StudyPlan.EstimateAsync(session.Store, study, cancellationToken) is { } estimate
                ? $"about {StudyPlan.Say(estimate.Estimate)} of runs on this machine, timed by {estimate.Runs} earlier runs of this model recorded here"
                  + (study.Preparation is null ? "" : ", plus the preparations")
                : "no earlier run of this model is recorded here to time the study by; the progress bar estimates once runs finish");
        // Each task's data and reward model first (found again when prepared before): the runs' specs name them.
        var (prepared, preparations) = await TaskPreparation.PrepareAsync(study, Path.Combine(Path.GetFullPath(options.DataFolder), TaskPreparation.FolderName),
            session.Journal, Path.GetFullPath(settings.Study), log, cancellationToken);
        study = prepared;
        var resume = settings.Resume ? await ResumePlan.PlanAsync(session.Store, study.Name, study.Runs.Select(r => r.Spec).ToList(), cancellationToken) : null;
        var (studyId, _) = settings.Json
            ? await runner.RunAsync(study, sourceText, settings.Study, null, cancellationToken, resume, preparations)
            : await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var overall = progress.AddTask(Markup.Escape($"{study.Name}: {study.Runs.Count} cells"), maxValue: study.Runs.Count);
                    var current = progress.AddTask("starting", maxValue: 1);
                    var result = await runner.RunAsync(study, sourceText, settings.Study, at =>
                    {
                        overall.Value = at.Run - 1;
                        overall.Description = Markup.Escape($"{study.Name}: cell {at.Run} of {at.RunCount}");
                        current.Value = 0;
                        current.MaxValue = at.Current.Spec.Loop.GradientSteps;
                        var name = $"{at.Current.Cell.Reward} {at.Current.Spec.Label} seed {at.Current.Cell.Seed}";
                        current.Description = Markup.Escape(name);
                        return new Progress<RunProgress>(p =>
                        {
                            current.Value = p.Step;
                            current.Description = Markup.Escape($"{name}: gold {p.GoldReward:0.000}");
                        });
                    }, cancellationToken, resume, preparations);
                    overall.Value = study.Runs.Count;
                    current.Value = current.MaxValue;
                    return result;
                });

        // The report is written from the event store: the study stream and each linked run's own stream.
        var record = await StudyHistory.LoadAsync(session.Store, studyId, cancellationToken)
            ?? throw new InvalidOperationException($"study {studyId} was not recorded");
        var summary = new StudySummary(study.Name, studyId, record.Runs, record.Prepared);
        var files = StudyReport.Write(output, summary);
        if (tensorBoard) files = [.. files, TensorBoardReport.Write(output, summary.DistinctRuns)];
        await runner.CompleteAsync(studyId, output, cancellationToken);

        var failed = summary.DistinctRuns.Where(o => o.Status != "completed").ToList();
        if (settings.Json)
        {
            Console.WriteLine(await File.ReadAllTextAsync(Path.Combine(output, StudyReport.SummaryJson), cancellationToken));
        }
        else
        {
            AnsiConsole.Write(summary.Render(AnsiConsole.Profile.Width));
            AnsiConsole.MarkupLineInterpolated($"[grey]study {studyId}; transport {session.Transport}; report in {output}: {string.Join(", ", files.Select(Path.GetFileName))}[/]");
            foreach (var run in failed)
                AnsiConsole.MarkupLineInterpolated($"[red]{run.Spec.Label} seed {run.Spec.Seed} ({run.RunId}) failed: {run.FailureReason}[/]");
        }
        return failed.Count == 0 ? 0 : 1;
    }
}

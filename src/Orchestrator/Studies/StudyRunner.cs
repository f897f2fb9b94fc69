using System.Text.Json;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Orchestrator.Studies;

/// <summary>Where a study stands, for progress displays: the run under way (1-based) of how many.</summary>
public sealed record StudyProgress(int Run, int RunCount, StudyRun Current);

/// <summary>
/// Runs every cell of a study, one run after another, through a <see cref="PipelineSession"/>, and records the
/// study: <see cref="StudyStarted"/> with the file's text, one <see cref="StudyRunFinished"/> per run as it ends.
/// The caller writes the report and then records <see cref="StudyCompleted"/> with <see cref="CompleteAsync"/>.
/// A cell whose spec equals an earlier cell's (labels aside; e.g. a sweep's B = 10 at M = 10 is the main grid's
/// run) is linked to that run instead of running it again: runs are deterministic given their spec.
/// </summary>
public sealed class StudyRunner(PipelineSession session)
{
    private readonly EventJournal _journal = session.Journal;

    /// <param name="progressFor">A progress sink per run (null: no progress); told when each run starts.</param>
    /// <param name="resume">`study FILE --resume`: runs recorded earlier are kept or resumed instead of started (a new
    /// study stream links them).</param>
    /// <param name="prepared">The tasks' preparations (<see cref="Preparation.TaskPreparation"/>), recorded on the study's
    /// stream before its runs; <paramref name="study"/>'s specs already name them.</param>
    /// <returns>The study's id and each cell's outcome, in the study's run order.</returns>
    public async Task<(Guid StudyId, IReadOnlyList<(StudyCell Cell, RunOutcome Outcome)> Runs)> RunAsync(
        Study study, string sourceText, string? sourceName,
        Func<StudyProgress, IProgress<RunProgress>?>? progressFor, CancellationToken ct, ResumePlan? resume = null,
        IReadOnlyList<StudyTaskPrepared>? prepared = null)
    {
        var studyId = NewId.NextGuid();
        await _journal.StartAsync(studyId, new StudyStarted
        {
            StudyId = studyId, Name = study.Name, SourceText = sourceText, SourceName = sourceName,
            RunCount = study.Runs.Count, StartedAt = DateTimeOffset.UtcNow,
        }, ct);
        if (prepared is { Count: > 0 })
            await _journal.AppendAsync(studyId, prepared.Select(p => (object)(p with { StudyId = studyId })), ct);

        var finished = new List<(StudyCell, RunOutcome)>();
        var made = new Dictionary<string, RunOutcome>();
        foreach (var (run, i) in study.Runs.Select((r, i) => (r, i)))
        {
            var key = SameRunKey(run.Spec);
            var reused = made.TryGetValue(key, out var outcome);
            if (!reused)
            {
                var progress = progressFor?.Invoke(new StudyProgress(i + 1, study.Runs.Count, run));
                made[key] = outcome = resume is null ? await session.RunAsync(run.Spec, progress, ct) : await resume.RunAsync(session, run.Spec, progress, ct);
            }
            await _journal.AppendAsync(studyId, ct, new StudyRunFinished
            {
                StudyId = studyId, RunId = outcome!.RunId, Cell = run.Cell, Status = outcome.Status, Reused = reused,
            });
            finished.Add((run.Cell, outcome));
        }
        return (studyId, finished);
    }

    /// <summary>What makes two runs the same run: everything in the spec but its labels (parameters in name order).</summary>
    public static string SameRunKey(RunSpec spec) => JsonSerializer.Serialize(spec with
    {
        Experiment = "",
        Label = "",
        Method = spec.Method with { Parameters = new SortedDictionary<string, double>(spec.Method.Parameters.ToDictionary(), StringComparer.Ordinal) },
    });

    public Task CompleteAsync(Guid studyId, string reportFolder, CancellationToken ct) =>
        _journal.AppendAsync(studyId, ct, new StudyCompleted
        {
            StudyId = studyId, CompletedAt = DateTimeOffset.UtcNow, ReportFolder = Path.GetFullPath(reportFolder),
        });
}

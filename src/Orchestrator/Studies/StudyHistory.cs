using Marten;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Orchestrator.Studies;

/// <summary>One cell of a recorded study and its run, rebuilt from the run's own stream.</summary>
public sealed record StudyCellRun(StudyCell Cell, RunOutcome Outcome);

/// <summary>A study rebuilt from its stream and its runs' streams: what the report is written from.</summary>
/// <param name="Prepared">Each prepared task's dataset and reward model (a length study with prepare), in reward order.</param>
public sealed record StudyRecord(StudyStarted Started, IReadOnlyList<StudyCellRun> Runs, StudyCompleted? Completed,
    IReadOnlyList<StudyTaskPrepared> Prepared)
{
    public Guid StudyId => Started.StudyId;
}

public static class StudyHistory
{
    /// <summary>
    /// The study stream's facts and every linked run rebuilt with <see cref="RunHistory.LoadAsync"/>, in the
    /// order they finished. Null when no study has that id.
    /// </summary>
    /// <exception cref="InvalidOperationException">The study links a run whose stream is missing.</exception>
    public static async Task<StudyRecord?> LoadAsync(IDocumentStore store, Guid studyId, CancellationToken ct)
    {
        IReadOnlyList<object> events;
        await using (var session = store.QuerySession())
            events = (await session.Events.FetchStreamAsync(studyId, token: ct)).Select(e => e.Data).ToList();
        if (events.FirstOrDefault() is not StudyStarted started)
            return null;

        var runs = new List<StudyCellRun>();
        foreach (var finished in events.OfType<StudyRunFinished>())
        {
            var record = await RunHistory.LoadAsync(store, finished.RunId, ct)
                ?? throw new InvalidOperationException($"study {studyId}: run {finished.RunId} has no recorded stream");
            runs.Add(new StudyCellRun(finished.Cell, record.Outcome));
        }
        return new StudyRecord(started, runs, events.OfType<StudyCompleted>().LastOrDefault(), events.OfType<StudyTaskPrepared>().ToList());
    }
}

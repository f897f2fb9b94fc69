using Marten;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Studies;

/// <summary>
/// Appends a study's facts to its own stream (keyed by StudyId). The runs keep their own streams; this one
/// links them to the cells of the grid, so every number of a study's report traces to recorded runs.
/// </summary>
public sealed class StudyJournal(IDocumentStore store)
{
    public async Task StartAsync(StudyStarted started, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.StartStream(started.StudyId, started);
        await session.SaveChangesAsync(ct);
    }

    public async Task AppendAsync(Guid studyId, object fact, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.Append(studyId, fact);
        await session.SaveChangesAsync(ct);
    }
}

using Marten;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Appends facts to one event stream per run (keyed by RunId) or per study (keyed by StudyId). The
/// Orchestrator is the only writer, and records a batch before handing it to the Learner: nothing is
/// learned unrecorded. A study's stream only links its runs, whose own streams hold the numbers.
/// </summary>
public sealed class EventJournal(IDocumentStore store)
{
    public async Task StartAsync(Guid streamId, object first, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.StartStream(streamId, first);
        await session.SaveChangesAsync(ct);
    }

    public async Task AppendAsync(Guid streamId, IEnumerable<object> events, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.Append(streamId, events.ToArray());
        await session.SaveChangesAsync(ct);
    }

    public Task AppendAsync(Guid streamId, CancellationToken ct, params object[] events) => AppendAsync(streamId, events, ct);
}

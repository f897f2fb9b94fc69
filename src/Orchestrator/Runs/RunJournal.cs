using Marten;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Appends a run's facts to its event stream (one stream per run, keyed by RunId). The Orchestrator is
/// the only writer, and writes a batch before handing it to the Learner: nothing is learned unrecorded.
/// </summary>
public sealed class RunJournal(IDocumentStore store)
{
    public async Task StartAsync(RunStarted started, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.StartStream(started.RunId, started);
        await session.SaveChangesAsync(ct);
    }

    public async Task AppendAsync(Guid runId, IEnumerable<object> events, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        session.Events.Append(runId, events.ToArray());
        await session.SaveChangesAsync(ct);
    }

    public Task AppendAsync(Guid runId, CancellationToken ct, params object[] events) => AppendAsync(runId, events, ct);
}

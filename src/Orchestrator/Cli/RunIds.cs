using Marten;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Cli;

/// <summary>Resolves a run id or a unique prefix or suffix of one against the recorded runs.</summary>
public static class RunIds
{
    public static async Task<Guid> ResolveAsync(IDocumentStore store, string idOrPrefix, CancellationToken ct)
    {
        if (Guid.TryParse(idOrPrefix, out var exact)) return exact;
        await using var session = store.QuerySession();
        var ids = (await session.Query<RunSummary>().Select(r => r.Id).ToListAsync(ct))
            .Where(id => id.ToString().StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase)
                || id.ToString().EndsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase))
            .ToList();
        return ids.Count switch
        {
            1 => ids[0],
            0 => throw new ArgumentException($"run: no recorded run starts or ends with '{idOrPrefix}' (see `preftune runs`)"),
            _ => throw new ArgumentException($"run: '{idOrPrefix}' matches {ids.Count} runs; give more of the id"),
        };
    }
}

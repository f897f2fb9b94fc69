using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// D_pref as prompt groups of N scored responses. Batches walk a seeded shuffle of the groups, reshuffled
/// each epoch; each batch renumbers its groups 0..G-1 (Rollout.Group is the index within a batch).
/// </summary>
public sealed class OfflineDataset
{
    private readonly List<List<TrainingSample>> _groups;
    private readonly Random _order;
    private int[] _epoch = [];
    private int _next;

    public OfflineDataset(IReadOnlyList<TrainingSample> samples, int responsesPerPrompt, Random order)
    {
        _groups = samples.GroupBy(s => s.Rollout.Group).OrderBy(g => g.Key).Select(g => g.ToList()).ToList();
        if (_groups.Any(g => g.Count != responsesPerPrompt))
            throw new ArgumentException($"dataset: every prompt needs {responsesPerPrompt} responses");
        _order = order;
    }

    public int Prompts => _groups.Count;

    public IReadOnlyList<TrainingSample> NextBatch(int groups)
    {
        var batch = new List<TrainingSample>();
        for (var g = 0; g < groups; g++)
        {
            if (_next >= _epoch.Length)
            {
                _epoch = Enumerable.Range(0, _groups.Count).ToArray();
                _order.Shuffle(_epoch);
                _next = 0;
            }
            var group = g;
            batch.AddRange(_groups[_epoch[_next++]].Select(s => s with { Rollout = s.Rollout with { Group = group } }));
        }
        return batch;
    }
}

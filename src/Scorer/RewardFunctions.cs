using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks;

namespace PrefTune.Scorer;

/// <summary>
/// Turns rollouts into rewards: the gold reward of the task, always (measured, never trained on), and the reward a
/// method trains on, which is the gold one unless the request names a learned reward model
/// (<see cref="ScoreRollouts.RewardModel"/>, kind "model" in <see cref="RewardRegistry"/>).
/// Reward models stay loaded in a small LRU cache; their libtorch work holds <see cref="TorchRuntime.Work"/>, as the
/// Sampler's and Learner's does, so that services sharing a process never run libtorch from two threads at once.
/// </summary>
public sealed class RewardFunctions : IDisposable
{
    /// <summary>Tasks are cheap (no model: the gold reward is arithmetic on the rollout); models are not, and a Scorer
    /// serves a few runs at a time, each with one reward model.</summary>
    private const int MaxTasks = 64, MaxRewardModels = 3;

    private readonly LruCache<IPreferenceTask> _tasks = new(MaxTasks);
    /// <summary>Touched only while holding <see cref="TorchRuntime.Work"/>: eviction disposes a model no one else is using.</summary>
    private readonly LruCache<RewardModelScorer> _models = new(MaxRewardModels);
    private readonly SemaphoreSlim _gate = TorchRuntime.Work;

    /// <summary>Reward models loaded now (for tests of the cache bound).</summary>
    public int LoadedRewardModels => _models.Count;

    public async Task<IReadOnlyList<RolloutScore>> ScoreAsync(ScoreRollouts request, CancellationToken cancellationToken = default)
    {
        var task = _tasks.GetOrAdd(Key(request.Task), () => PreferenceTasks.Create(request.Task));
        var gold = request.Rollouts.Select(task.GoldReward).ToList();
        IReadOnlyList<double> rewards = gold;
        if (request.RewardModel is { } spec)
        {
            await _gate.WaitAsync(cancellationToken);
            try
            {
                TorchRuntime.UseThreads(request.TorchThreads);
                var model = _models.GetOrAdd(Key(spec), () => RewardModelScorer.Load(spec));
                rewards = RewardRegistry.Get(RewardRegistry.Model).Create(new RewardSource(task, model)).Rewards(request.Rollouts);
            }
            finally
            {
                _gate.Release();
            }
        }
        return request.Rollouts
            .Select((rollout, i) => new RolloutScore { SampleId = rollout.SampleId, Reward = rewards[i], GoldReward = gold[i] })
            .ToList();
    }

    /// <summary>
    /// A spec's canonical text. Record equality would do for today's specs, but it compares collection members by
    /// reference, so a spec that gains one (a list of stop ids, say) would never hit the cache once deserialised from a
    /// message, and the cache would grow by one entry per request; the serialised form compares by content.
    /// </summary>
    private static string Key<T>(T spec) => JsonSerializer.Serialize(spec);

    public void Dispose()
    {
        _models.Dispose();
        _tasks.Dispose();
    }
}

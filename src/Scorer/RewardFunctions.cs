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
        if (task.GoldRewardModel is null && request.RewardModel is null)
            return Scores(request.Rollouts, request.Rollouts.Select(task.GoldReward).ToList(), null);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            TorchRuntime.UseThreads(request.TorchThreads);
            // the gold reward: the task's rule, or its gold reward model (a measurement: never counted as a reward query)
            var gold = RewardRegistry.Get(RewardRegistry.Gold).Create(new RewardSource(task, Loaded(task.GoldRewardModel))).Rewards(request.Rollouts);
            var rewards = request.RewardModel is { } spec
                ? RewardRegistry.Get(RewardRegistry.Model).Create(new RewardSource(task, Loaded(spec))).Rewards(request.Rollouts)
                : null;
            return Scores(request.Rollouts, gold, rewards);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A reward model from the cache, loaded on first use; the caller holds <see cref="TorchRuntime.Work"/>.</summary>
    private RewardModelScorer? Loaded(RewardModelSpec? spec) => spec is null ? null : _models.GetOrAdd(Key(spec), () => RewardModelScorer.Load(spec));

    /// <summary>One score per rollout: the reward trained on is the gold reward unless a reward model gave its own.</summary>
    private static List<RolloutScore> Scores(IReadOnlyList<Rollout> rollouts, IReadOnlyList<double> gold, IReadOnlyList<double>? rewards) =>
        rollouts.Select((rollout, i) => new RolloutScore { SampleId = rollout.SampleId, Reward = (rewards ?? gold)[i], GoldReward = gold[i] }).ToList();

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

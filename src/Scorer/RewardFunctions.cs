using System.Collections.Concurrent;
using PrefTune.Messages;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks;

namespace PrefTune.Scorer;

/// <summary>
/// Turns rollouts into rewards. Today the training reward is the task's gold reward (the bandit study
/// trains on it directly); a learned Bradley-Terry proxy reward model plugs in through
/// <see cref="ScoreRollouts.RewardModel"/> with the synthetic length tasks.
/// </summary>
public sealed class RewardFunctions
{
    private readonly ConcurrentDictionary<TaskSpec, (IPreferenceTask Task, IRewardFunction Reward)> _tasks = new();

    public IReadOnlyList<RolloutScore> Score(ScoreRollouts request)
    {
        if (request.RewardModel is { } model)
            throw new NotSupportedException($"reward_model: learned reward models are not served by this Scorer yet (got {model.Path})");
        var (task, reward) = _tasks.GetOrAdd(request.Task, spec =>
        {
            var task = PreferenceTasks.Create(spec);
            return (task, RewardRegistry.Get(RewardRegistry.Gold).Create(task));
        });
        return request.Rollouts
            .Select(rollout => new RolloutScore { SampleId = rollout.SampleId, Reward = reward.Reward(rollout), GoldReward = task.GoldReward(rollout) })
            .ToList();
    }
}

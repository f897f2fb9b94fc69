using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Scorer;

/// <summary>Algorithm 1, step 3: label responses with the reward.</summary>
public sealed class ScoreRolloutsConsumer(RewardFunctions rewards) : IConsumer<ScoreRollouts>
{
    public async Task Consume(ConsumeContext<ScoreRollouts> context) =>
        await context.RespondAsync(Score(rewards, context.Message));

    /// <summary>The answer to <paramref name="request"/> (also given in process by the bench's direct loop).</summary>
    public static RolloutsScored Score(RewardFunctions rewards, ScoreRollouts request)
    {
        var scores = rewards.Score(request);
        return new RolloutsScored
        {
            RunId = request.RunId,
            BatchId = request.BatchId,
            Purpose = request.Purpose,
            Scores = scores,
            RewardQueries = scores.Count,
        };
    }
}

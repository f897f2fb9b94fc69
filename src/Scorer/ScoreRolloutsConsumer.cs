using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Scorer;

/// <summary>Algorithm 1, step 3: label responses with the reward.</summary>
public sealed class ScoreRolloutsConsumer(RewardFunctions rewards) : IConsumer<ScoreRollouts>
{
    public async Task Consume(ConsumeContext<ScoreRollouts> context)
    {
        var request = context.Message;
        var scores = rewards.Score(request);
        await context.RespondAsync(new RolloutsScored
        {
            RunId = request.RunId,
            BatchId = request.BatchId,
            Purpose = request.Purpose,
            Scores = scores,
            RewardQueries = scores.Count,
        });
    }
}

using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Scorer;

/// <summary>Algorithm 1, step 3: label responses with the reward.</summary>
public sealed class ScoreRolloutsConsumer(RewardFunctions rewards) : IConsumer<ScoreRollouts>
{
    public async Task Consume(ConsumeContext<ScoreRollouts> context) =>
        await context.RespondAsync(await ScoreAsync(rewards, context.Message, context.CancellationToken));

    /// <summary>The answer to <paramref name="request"/> (also given in process by the bench's direct loop).</summary>
    public static async Task<RolloutsScored> ScoreAsync(RewardFunctions rewards, ScoreRollouts request, CancellationToken cancellationToken)
    {
        var scores = await rewards.ScoreAsync(request, cancellationToken);
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

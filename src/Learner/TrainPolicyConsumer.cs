using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Learner;

/// <summary>Algorithm 1, step 4: applies the method's loss to one batch, then publishes the new checkpoint.</summary>
public sealed class TrainPolicyConsumer(Learners learners) : IConsumer<TrainPolicy>
{
    public async Task Consume(ConsumeContext<TrainPolicy> context)
    {
        var trained = await learners.TrainAsync(context.Message, context.CancellationToken);
        await context.Publish(new CheckpointPublished { RunId = trained.RunId, Checkpoint = trained.Checkpoint });
        await context.RespondAsync(trained);
    }
}

/// <summary>Batches of one run must be applied in order, one at a time.</summary>
public sealed class TrainPolicyConsumerDefinition : ConsumerDefinition<TrainPolicyConsumer>
{
    public TrainPolicyConsumerDefinition() => ConcurrentMessageLimit = 1;
}

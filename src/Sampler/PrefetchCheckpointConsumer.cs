using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Sampler;

/// <summary>Loads a newly published policy version before the next sampling request needs it.</summary>
public sealed class PrefetchCheckpointConsumer(PolicyCache policies) : IConsumer<CheckpointPublished>
{
    public Task Consume(ConsumeContext<CheckpointPublished> context) =>
        policies.PrefetchAsync(context.Message.RunId, context.Message.Checkpoint, context.CancellationToken);
}

public sealed class PrefetchCheckpointConsumerDefinition : ConsumerDefinition<PrefetchCheckpointConsumer>
{
    public PrefetchCheckpointConsumerDefinition() => ConcurrentMessageLimit = 1;
}

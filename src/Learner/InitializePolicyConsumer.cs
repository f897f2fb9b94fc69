using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Learner;

/// <summary>Builds a run's policy and reference (version 0) and stores it.</summary>
public sealed class InitializePolicyConsumer(Learners learners) : IConsumer<InitializePolicy>
{
    public async Task Consume(ConsumeContext<InitializePolicy> context)
    {
        var initialized = await learners.InitializeAsync(context.Message, context.CancellationToken);
        await context.Publish(new CheckpointPublished { RunId = initialized.RunId, Checkpoint = initialized.Policy });
        await context.RespondAsync(initialized);
    }
}

public sealed class InitializePolicyConsumerDefinition : ConsumerDefinition<InitializePolicyConsumer>
{
    public InitializePolicyConsumerDefinition() => ConcurrentMessageLimit = 1;
}

using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Sampler;

/// <summary>Algorithm 1, step 2 (online): y ~ pi_theta(.|x), C per prompt, with their log-probs.</summary>
public sealed class SampleRolloutsConsumer(PolicyCache policies) : IConsumer<SampleRollouts>
{
    public async Task Consume(ConsumeContext<SampleRollouts> context)
    {
        var request = context.Message;
        var rollouts = await policies.UseAsync(request.RunId, request.Task, request.Policy, request.TorchThreads,
            (task, policy) => task.Generate(policy, request.Prompts, request.ResponsesPerPrompt, request.Temperature,
                request.Seed, request.Policy.Version, request.BatchId),
            context.CancellationToken);
        await context.RespondAsync(new RolloutsGenerated
        {
            RunId = request.RunId,
            BatchId = request.BatchId,
            Purpose = request.Purpose,
            Iteration = request.Iteration,
            PolicyVersion = request.Policy.Version,
            Rollouts = rollouts,
        });
    }
}

/// <summary>One libtorch job at a time per process; a failure is final (the run fails with the reason), not retried.</summary>
public sealed class SampleRolloutsConsumerDefinition : ConsumerDefinition<SampleRolloutsConsumer>
{
    public SampleRolloutsConsumerDefinition() => ConcurrentMessageLimit = 1;
}

using MassTransit;
using PrefTune.Messages;
using TorchSharp;

namespace PrefTune.Sampler;

/// <summary>Algorithm 1, step 2 (online): y ~ pi_theta(.|x), C per prompt, with their log-probs.</summary>
public sealed class SampleRolloutsConsumer(PolicyCache policies) : IConsumer<SampleRollouts>
{
    public async Task Consume(ConsumeContext<SampleRollouts> context) =>
        await context.RespondAsync(await SampleAsync(policies, context.Message, context.CancellationToken));

    /// <summary>The answer to <paramref name="request"/> (also given in process by the bench's direct loop).</summary>
    public static async Task<RolloutsGenerated> SampleAsync(PolicyCache policies, SampleRollouts request, CancellationToken ct)
    {
        var rollouts = await policies.UseAsync(request.RunId, request.Task, request.Policy, request.TorchThreads,
            (task, policy) => task.Generate(policy, request.Prompts, request.ResponsesPerPrompt, request.Temperature,
                request.Seed, request.Policy.Version, request.BatchId),
            ct);
        if (request.Reference is not null)
            rollouts = await WithReferenceLogProbsAsync(policies, request, rollouts, ct);
        return new RolloutsGenerated
        {
            RunId = request.RunId,
            BatchId = request.BatchId,
            Purpose = request.Purpose,
            Iteration = request.Iteration,
            PolicyVersion = request.Policy.Version,
            Rollouts = rollouts,
        };
    }

    private static async Task<IReadOnlyList<Rollout>> WithReferenceLogProbsAsync(PolicyCache policies, SampleRollouts request, IReadOnlyList<Rollout> rollouts, CancellationToken ct)
    {
        var logProbs = await policies.UseAsync(request.RunId, request.Task, request.Reference!, request.TorchThreads, (task, reference) =>
        {
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            return task.SequenceLogProbs(reference, rollouts).to_type(torch.ScalarType.Float64).cpu().data<double>().ToArray();
        }, ct, PolicyCache.ReferenceSlot);
        return rollouts.Select((r, i) => r with { ReferenceLogProb = logProbs[i] }).ToList();
    }
}

/// <summary>One libtorch job at a time per process; a failure is final (the run fails with the reason), not retried.</summary>
public sealed class SampleRolloutsConsumerDefinition : ConsumerDefinition<SampleRolloutsConsumer>
{
    public SampleRolloutsConsumerDefinition() => ConcurrentMessageLimit = 1;
}

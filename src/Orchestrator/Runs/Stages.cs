using MassTransit;
using PrefTune.Messages;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Runs;

/// <summary>A stage failed or did not answer; <see cref="Stage"/> names it for the run's failure record.</summary>
public sealed class StageException(string stage, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Stage { get; } = stage;
}

/// <summary>
/// The Orchestrator's view of the other services: one request/response per Algorithm 1 step, with the
/// stage timeout, and faults turned into <see cref="StageException"/>s that say which stage and why.
/// </summary>
public sealed class Stages(
    IRequestClient<InitializePolicy> initialize,
    IRequestClient<SampleRollouts> sample,
    IRequestClient<ScoreRollouts> score,
    IRequestClient<TrainPolicy> train,
    PrefTuneOptions options)
{
    public Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct) =>
        AskAsync<InitializePolicy, PolicyInitialized>(initialize, request, "learner", ct);

    public Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct) =>
        AskAsync<SampleRollouts, RolloutsGenerated>(sample, request, "sampler", ct);

    public Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct) =>
        AskAsync<ScoreRollouts, RolloutsScored>(score, request, "scorer", ct);

    public Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct) =>
        AskAsync<TrainPolicy, PolicyTrained>(train, request, "learner", ct);

    private async Task<TResponse> AskAsync<TRequest, TResponse>(IRequestClient<TRequest> client, TRequest request,
        string stage, CancellationToken ct)
        where TRequest : class where TResponse : class
    {
        var timeout = TimeSpan.FromSeconds(options.StageTimeoutSeconds);
        try
        {
            var response = await client.GetResponse<TResponse>(request, ct, RequestTimeout.After(ms: (int)timeout.TotalMilliseconds));
            return response.Message;
        }
        catch (RequestTimeoutException e)
        {
            throw new StageException(stage, $"no answer from the {stage} to {typeof(TRequest).Name} within {timeout.TotalSeconds:0} s", e);
        }
        catch (RequestFaultException e)
        {
            var cause = e.Fault?.Exceptions.FirstOrDefault();
            throw new StageException(stage, $"the {stage} failed on {typeof(TRequest).Name}: {cause?.ExceptionType.Split('.').Last()}: {cause?.Message ?? e.Message}", e);
        }
    }
}

using MassTransit;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using PrefTune.Messages;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Runs;

/// <summary>A stage failed or did not answer; <see cref="Stage"/> names it for the run's failure record.</summary>
public sealed class StageException(string stage, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Stage { get; } = stage;
}

/// <summary>
/// The Orchestrator's view of the other services: one request/response per Algorithm 1 step. Every request is
/// idempotent (seeded sampling, pure scoring, a Learner that answers a batch it already trained with its earlier
/// result), so an attempt that gets no answer (a service killed mid-request, a broker restarting) is asked
/// again with backoff and jitter until the stage budget runs out; a circuit breaker stops hammering a broker
/// that is down. A stage that answers with a fault fails the run at once: asking again would fail again.
/// </summary>
public sealed class Stages : IStageCalls
{
    private readonly IRequestClient<InitializePolicy> _initialize;
    private readonly IRequestClient<SampleRollouts> _sample;
    private readonly IRequestClient<ScoreRollouts> _score;
    private readonly IRequestClient<TrainPolicy> _train;
    private readonly IRequestClient<EvaluatePolicy> _evaluate;
    private readonly PrefTuneOptions _options;
    private readonly ResiliencePipeline _pipeline;

    public Stages(IRequestClient<InitializePolicy> initialize, IRequestClient<SampleRollouts> sample, IRequestClient<ScoreRollouts> score,
        IRequestClient<TrainPolicy> train, IRequestClient<EvaluatePolicy> evaluate, PrefTuneOptions options)
    {
        (_initialize, _sample, _score, _train, _evaluate, _options) = (initialize, sample, score, train, evaluate, options);
        _pipeline = BuildPipeline(options);
    }

    /// <summary>Attempts that timed out or failed in transport so far (all stages); a run without faults has none.</summary>
    public int Retries { get; private set; }

    /// <summary>Time spent waiting for stage answers so far (broker and service work; overlapping waits add up).</summary>
    public TimeSpan Waiting => TimeSpan.FromTicks(Interlocked.Read(ref _waitingTicks));
    private long _waitingTicks;

    public Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct) =>
        AskAsync<InitializePolicy, PolicyInitialized>(_initialize, request, "learner", ct);

    public Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct) =>
        AskAsync<SampleRollouts, RolloutsGenerated>(_sample, request, "sampler", ct);

    public Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct) =>
        AskAsync<ScoreRollouts, RolloutsScored>(_score, request, "scorer", ct);

    public Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct) =>
        AskAsync<TrainPolicy, PolicyTrained>(_train, request, "learner", ct);

    /// <summary>One hop: the Sampler samples and asks the Scorer itself; a quiet Scorer is a quiet Sampler here, asked again.</summary>
    public Task<EvaluationSummarized> EvaluateAsync(EvaluatePolicy request, CancellationToken ct) =>
        AskAsync<EvaluatePolicy, EvaluationSummarized>(_evaluate, request, "sampler", ct);

    /// <summary>Total budget, then retries (backoff with jitter) of transient failures, then the breaker, then one attempt.</summary>
    private ResiliencePipeline BuildPipeline(PrefTuneOptions options) => new ResiliencePipelineBuilder()
        .AddTimeout(TimeSpan.FromSeconds(options.StageTimeoutSeconds))
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(500),
            MaxDelay = TimeSpan.FromSeconds(10),
            MaxRetryAttempts = int.MaxValue,
            OnRetry = _ => { Retries++; return default; },
        })
        .AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not BrokenCircuitException && IsTransient(e)),
            FailureRatio = 1.0,
            MinimumThroughput = Math.Max(2, options.CircuitBreakAfter),
            SamplingDuration = TimeSpan.FromSeconds(Math.Max(30, options.CircuitBreakAfter * options.StageAttemptSeconds * 2)),
            BreakDuration = TimeSpan.FromSeconds(options.CircuitBreakSeconds),
        })
        .Build();

    /// <summary>Worth asking again: no answer, a transport hiccup or an open circuit. A fault is an answer.</summary>
    private static bool IsTransient(Exception e) => e is not (RequestFaultException or OperationCanceledException or StageException)
        || e is RequestTimeoutException;

    private async Task<TResponse> AskAsync<TRequest, TResponse>(IRequestClient<TRequest> client, TRequest request,
        string stage, CancellationToken ct)
        where TRequest : class where TResponse : class
    {
        var attempt = RequestTimeout.After(ms: (int)(_options.StageAttemptSeconds * 1000));
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return await _pipeline.ExecuteAsync(async token =>
                (await client.GetResponse<TResponse>(request, token, attempt)).Message, ct);
        }
        catch (TimeoutRejectedException e)
        {
            throw new StageException(stage, $"no answer from the {stage} to {typeof(TRequest).Name} within {_options.StageTimeoutSeconds:0} s "
                + $"(attempts of {_options.StageAttemptSeconds:0} s, {Retries} retries so far)", e);
        }
        catch (RequestFaultException e)
        {
            var cause = e.Fault?.Exceptions.FirstOrDefault();
            throw new StageException(stage, $"the {stage} failed on {typeof(TRequest).Name}: {cause?.ExceptionType.Split('.').Last()}: {cause?.Message ?? e.Message}", e);
        }
        finally
        {
            Interlocked.Add(ref _waitingTicks, System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks);
        }
    }
}

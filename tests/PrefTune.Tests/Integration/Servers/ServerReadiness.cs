using Polly;
using Polly.Retry;

namespace PrefTune.Tests.Integration.Servers;

/// <summary>Waits for a server the way the fixtures share: a 30 s timeout around a retry every 200 ms.</summary>
internal static class ServerReadiness
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static async Task WaitAsync(string what, Func<CancellationToken, Task> probe)
    {
        Exception? last = null;
        var pipeline = new ResiliencePipelineBuilder()
            .AddTimeout(Timeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
                MaxRetryAttempts = int.MaxValue,
                Delay = TimeSpan.FromMilliseconds(200),
                BackoffType = DelayBackoffType.Constant,
                OnRetry = args => { last = args.Outcome.Exception; return ValueTask.CompletedTask; },
            })
            .Build();
        try
        {
            await pipeline.ExecuteAsync(async ct => await probe(ct), CancellationToken.None);
        }
        catch (Exception e) when (e is Polly.Timeout.TimeoutRejectedException or OperationCanceledException)
        {
            throw new InvalidOperationException($"{what} did not become ready within {Timeout.TotalSeconds} s: {last?.Message}", last);
        }
    }

    /// <summary>Whether a Docker engine answers (the cheap check: no engine, no endpoint).</summary>
    public static bool DockerAvailable =>
        DotNet.Testcontainers.Configurations.TestcontainersSettings.OS.DockerEndpointAuthConfig is not null;
}

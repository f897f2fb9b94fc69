using Npgsql;
using Polly;
using Polly.Retry;

namespace PrefTune.Storage;

/// <summary>How hard storage calls (database and checkpoint files) retry before giving up.</summary>
public sealed record StorageResilienceOptions
{
    /// <summary>Retries after the first attempt of one call, on transient database or I/O errors.</summary>
    public int MaxRetryAttempts { get; init; } = 5;
    /// <summary>Delay before the first retry; doubles each time, with jitter.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);
    /// <summary>Cap on any one retry delay.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Budget for one whole call, retries included (a checkpoint of hundreds of MB must fit in it).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    public static StorageResilienceOptions Default { get; } = new();

    /// <summary>Retries that keep going for about <paramref name="budget"/> (a database restarting), then give up.</summary>
    public static StorageResilienceOptions Retrying(TimeSpan budget)
    {
        var options = new StorageResilienceOptions();
        // delays 0.2, 0.4, ... s doubling up to MaxDelay, then MaxDelay each: count how many fit in the budget
        var (attempts, total, delay) = (0, TimeSpan.Zero, options.BaseDelay);
        while (total < budget)
        {
            total += delay;
            attempts++;
            delay = delay * 2 > options.MaxDelay ? options.MaxDelay : delay * 2;
        }
        return options with { MaxRetryAttempts = Math.Max(1, attempts) };
    }

    /// <summary>An overall timeout around exponential-backoff retries of transient <see cref="NpgsqlException"/>s and <see cref="IOException"/>s.</summary>
    public ResiliencePipeline BuildPipeline() => new ResiliencePipelineBuilder()
        .AddTimeout(Timeout)
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>(IsTransient).Handle<IOException>(IsTransient),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = BaseDelay,
            MaxDelay = MaxDelay,
            MaxRetryAttempts = MaxRetryAttempts,
        })
        .Build();

    /// <summary>Connection-level failures and server-side transient states; not a bad query or a missing object.</summary>
    private static bool IsTransient(NpgsqlException e) => e is not PostgresException || e.IsTransient;

    /// <summary>A missing file is an answer, not a hiccup.</summary>
    private static bool IsTransient(IOException e) => e is not (FileNotFoundException or DirectoryNotFoundException);
}

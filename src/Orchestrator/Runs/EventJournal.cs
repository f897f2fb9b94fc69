using System.Collections.Concurrent;
using Marten;
using Npgsql;
using Polly;
using Polly.Retry;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Appends facts to one event stream per run (keyed by RunId) or per study (keyed by StudyId). The
/// Orchestrator is the only writer, and records a batch before handing it to the Learner: nothing is
/// learned unrecorded. A study's stream only links its runs, whose own streams hold the numbers.
/// <para>Appends retry transient database failures (a restarting PostgreSQL) with backoff and jitter for
/// <see cref="PrefTuneOptions.StoreRetrySeconds"/>. A commit whose acknowledgement was lost must not be
/// appended twice: being the only writer, the journal knows each stream's version, and before retrying it
/// checks whether the stream already grew by exactly the events it was appending.</para>
/// </summary>
public sealed class EventJournal(IDocumentStore store, PrefTuneOptions options)
{
    private readonly ConcurrentDictionary<Guid, long> _versions = new();
    private readonly ResiliencePipeline _pipeline = BuildPipeline(options);

    /// <summary>Time spent in the event store so far (the benchmark's share of wall-clock).</summary>
    public TimeSpan Elapsed { get; private set; }
    /// <summary>Events appended so far.</summary>
    public long Appended { get; private set; }

    public async Task StartAsync(Guid streamId, object first, CancellationToken ct)
    {
        await WriteAsync(streamId, 1, async (session, token) =>
        {
            session.Events.StartStream(streamId, first);
            await session.SaveChangesAsync(token);
        }, ct);
    }

    public Task AppendAsync(Guid streamId, IEnumerable<object> events, CancellationToken ct)
    {
        var batch = events.ToArray();
        return WriteAsync(streamId, batch.Length, async (session, token) =>
        {
            session.Events.Append(streamId, batch);
            await session.SaveChangesAsync(token);
        }, ct);
    }

    public Task AppendAsync(Guid streamId, CancellationToken ct, params object[] events) => AppendAsync(streamId, events, ct);

    private async Task WriteAsync(Guid streamId, int count, Func<IDocumentSession, CancellationToken, Task> write, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var attempts = 0;
        try
        {
            await _pipeline.ExecuteAsync(async token =>
            {
                if (attempts++ > 0 || !_versions.ContainsKey(streamId))
                {
                    var now = await StreamVersionAsync(streamId, token);
                    if (attempts > 1 && _versions.TryGetValue(streamId, out var known) && now == known + count)
                        return; // the earlier attempt committed; only its acknowledgement was lost
                    _versions[streamId] = now;
                }
                await using var session = store.LightweightSession();
                await write(session, token);
            }, ct);
            _versions[streamId] = _versions.GetValueOrDefault(streamId) + count;
            Appended += count;
        }
        finally
        {
            Elapsed += clock.Elapsed;
        }
    }

    private async Task<long> StreamVersionAsync(Guid streamId, CancellationToken ct)
    {
        await using var query = store.QuerySession();
        return (await query.Events.FetchStreamStateAsync(streamId, ct))?.Version ?? 0;
    }

    private static ResiliencePipeline BuildPipeline(PrefTuneOptions options) => new ResiliencePipelineBuilder()
        .AddTimeout(TimeSpan.FromSeconds(options.StoreRetrySeconds))
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(5),
            MaxRetryAttempts = int.MaxValue,
        })
        .Build();

    /// <summary>A connection that broke or a server that is starting or shutting down; Marten wraps Npgsql's errors.</summary>
    internal static bool IsTransient(Exception e)
    {
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is NpgsqlException npgsql)
                return npgsql is not PostgresException || npgsql.IsTransient || ((PostgresException)npgsql).SqlState.StartsWith("57P", StringComparison.Ordinal);
            if (inner is System.Net.Sockets.SocketException or TimeoutException or EndOfStreamException) return true;
        }
        return false;
    }
}

using System.Net.Sockets;
using Npgsql;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace PrefTune.Storage.Postgres;

/// <summary>Fails fast, with the address, when the configured PostgreSQL does not answer.</summary>
public static class DatabaseProbe
{
    private static readonly TimeSpan RetryEvery = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Opens a connection and runs <c>select 1</c>, retrying every 200 ms; throws an
    /// <see cref="InvalidOperationException"/> naming host:port once <paramref name="timeout"/> has passed.
    /// </summary>
    public static async Task EnsureReachableAsync(string connectionString, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString)
        {
            Pooling = false,
            // one attempt may not outlive the whole budget (Npgsql counts whole seconds; 0 would mean forever)
            Timeout = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)),
        };
        var address = $"{builder.Host ?? "localhost"}:{builder.Port}";
        Exception? last = null;
        var pipeline = new ResiliencePipelineBuilder()
            .AddTimeout(timeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>(IsUnanswered).Handle<SocketException>().Handle<TimeoutException>(),
                MaxRetryAttempts = int.MaxValue,
                Delay = RetryEvery,
                BackoffType = DelayBackoffType.Constant,
                OnRetry = args =>
                {
                    last = args.Outcome.Exception;
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
        try
        {
            await pipeline.ExecuteAsync(async ct =>
            {
                await using var connection = new NpgsqlConnection(builder.ConnectionString);
                await connection.OpenAsync(ct);
                await using var command = new NpgsqlCommand("select 1", connection);
                await command.ExecuteScalarAsync(ct);
            }, cancellationToken);
        }
        catch (TimeoutRejectedException)
        {
            throw new InvalidOperationException(
                $"database: PostgreSQL at {address} did not answer within {timeout.TotalSeconds:0.#} s{Describe(last)}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new InvalidOperationException(
                $"database: PostgreSQL at {address} did not answer within {timeout.TotalSeconds:0.#} s{Describe(last)}");
        }
        catch (PostgresException e)
        {
            throw new InvalidOperationException($"database: PostgreSQL at {address} refused the connection: {e.MessageText} ({e.SqlState})", e);
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"database: PostgreSQL at {address} could not be reached: {e.Message}", e);
        }
    }

    /// <summary>No answer yet (refused, reset, still starting up); an answer such as "wrong password" is final.</summary>
    private static bool IsUnanswered(NpgsqlException e) =>
        e is not PostgresException pg || pg.SqlState is PostgresErrorCodes.CannotConnectNow or PostgresErrorCodes.TooManyConnections;

    private static string Describe(Exception? e) => e is null ? "" : $" (last error: {(e.InnerException ?? e).Message})";
}

using System.Diagnostics;
using Npgsql;
using PrefTune.Storage.Postgres;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>Needs the machine's PostgreSQL server binaries (apt-get install postgresql), not a running server.</summary>
public sealed class When_no_database_is_configured(ITestOutputHelper output) : IAsyncLifetime
{
    // mktemp -d style (0700 under /tmp): as root this also exercises the move to /var/tmp
    private readonly string _dataFolder = Directory.CreateTempSubdirectory("preftune-embedded-").FullName;

    [Fact]
    public async Task Should_start_a_private_server_and_reuse_it()
    {
        var clock = Stopwatch.StartNew();
        var first = await EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None);
        var created = clock.Elapsed;
        Assert.Equal("PostgreSQL", (await ScalarAsync(first, "select 'PostgreSQL'"))!.ToString());
        await ScalarAsync(first, "create table kept (x int); insert into kept values (42)");

        clock.Restart();
        var second = await EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None);
        var reused = clock.Elapsed;
        Assert.Equal(first, second);
        Assert.True(reused < TimeSpan.FromSeconds(1), $"reuse took {reused}");

        clock.Restart();
        await EmbeddedPostgres.StopAsync(_dataFolder);
        var stopped = clock.Elapsed;
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => ScalarAsync(first, "select 1"));

        clock.Restart();
        var third = await EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None);
        var restarted = clock.Elapsed;
        Assert.Equal(first, third);
        Assert.Equal(42, await ScalarAsync(third, "select x from kept"));

        output.WriteLine($"private PostgreSQL: created+started {created.TotalMilliseconds:0} ms, reused {reused.TotalMilliseconds:0} ms, " +
                         $"stopped {stopped.TotalMilliseconds:0} ms, restarted {restarted.TotalMilliseconds:0} ms " +
                         $"(cluster {EmbeddedPostgres.ClusterDirectory(_dataFolder)})");
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        var cluster = EmbeddedPostgres.ClusterDirectory(_dataFolder);
        await EmbeddedPostgres.StopAsync(_dataFolder);
        if (Directory.Exists(cluster)) Directory.Delete(cluster, recursive: true);
        Directory.Delete(_dataFolder, recursive: true);
    }
}

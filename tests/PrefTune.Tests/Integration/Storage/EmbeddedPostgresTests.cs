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
        // services started together race for the same folder: one creates the cluster, the other reuses it
        var racing = await Task.WhenAll(
            EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None),
            EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None));
        var created = clock.Elapsed;
        var first = racing[0];
        Assert.Equal(first, racing[1]);
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

        // a crash (or a reboot) leaves a stale pid file: the next start recovers the data
        var postmaster = Path.Combine(EmbeddedPostgres.ClusterDirectory(_dataFolder), "data", "postmaster.pid");
        using (var server = Process.GetProcessById(int.Parse(File.ReadLines(postmaster).First())))
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
        await WaitUntilClosedAsync(third);
        var fourth = await EmbeddedPostgres.EnsureStartedAsync(_dataFolder, CancellationToken.None);
        Assert.Equal(first, fourth);
        Assert.Equal(42, await ScalarAsync(fourth, "select x from kept"));

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

    private static async Task WaitUntilClosedAsync(string connectionString)
    {
        var port = new NpgsqlConnectionStringBuilder(connectionString).Port;
        for (var i = 0; i < 100; i++)
        {
            using var client = new System.Net.Sockets.TcpClient();
            try { await client.ConnectAsync("127.0.0.1", port); }
            catch (System.Net.Sockets.SocketException) { return; }
            await Task.Delay(100);
        }
        throw new TimeoutException($"port {port} still answers");
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

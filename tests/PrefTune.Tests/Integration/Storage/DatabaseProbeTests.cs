using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using PrefTune.Storage.Postgres;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Storage;

[Collection(PostgresCollection.Name)]
public sealed class When_the_database_is_probed(PostgresServer server)
{
    [Fact]
    public async Task Should_pass_when_the_server_answers()
    {
        await DatabaseProbe.EnsureReachableAsync(server.ConnectionString, TimeSpan.FromSeconds(5), CancellationToken.None);
    }

    [Fact]
    public async Task Should_fail_within_the_timeout_naming_a_dead_address()
    {
        var port = DeadPort();
        var timeout = TimeSpan.FromSeconds(2);
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            DatabaseProbe.EnsureReachableAsync($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres", timeout, CancellationToken.None));
        Assert.Contains($"127.0.0.1:{port}", error.Message);
        Assert.InRange(clock.Elapsed, timeout - TimeSpan.FromMilliseconds(100), timeout + TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Should_fail_within_the_timeout_when_nothing_answers_at_all()
    {
        // 10.255.255.1 is unroutable here: the connect hangs rather than being refused
        var timeout = TimeSpan.FromSeconds(1.5);
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            DatabaseProbe.EnsureReachableAsync("Host=10.255.255.1;Port=5432;Username=postgres", timeout, CancellationToken.None));
        Assert.Contains("10.255.255.1:5432", error.Message);
        Assert.True(clock.Elapsed < timeout + TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    private static int DeadPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

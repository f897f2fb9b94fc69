using System.Net.Sockets;
using Testcontainers.RabbitMq;
using Xunit;

namespace PrefTune.Tests.Integration.Servers;

/// <summary>
/// One RabbitMQ for the "servers" collection: the broker PREFTUNE_TEST_RABBITMQ names (infra/test.sh starts
/// one), else a Testcontainers container when a Docker engine exists.
/// </summary>
public sealed class RabbitMqServer : IAsyncLifetime
{
    public const string Variable = "PREFTUNE_TEST_RABBITMQ";

    private RabbitMqContainer? _container;

    /// <summary>amqp://user:password@host:port/ (what PrefTuneOptions.Broker takes).</summary>
    public string AmqpUri { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            AmqpUri = configured;
        }
        else if (ServerReadiness.DockerAvailable)
        {
            _container = new RabbitMqBuilder("rabbitmq:3.13-alpine").Build();
            await _container.StartAsync();
            AmqpUri = _container.GetConnectionString();
        }
        else
        {
            throw new InvalidOperationException(
                $"integration tests need RabbitMQ: set {Variable} (e.g. \"amqp://guest:guest@127.0.0.1:55672/\" " +
                "after bash infra/dev/rabbitmq-up.sh), or run them with a Docker engine; bash infra/test.sh does all of it");
        }
        var uri = new Uri(AmqpUri);
        await ServerReadiness.WaitAsync($"RabbitMQ ({Variable}: {uri.Host}:{uri.Port})", ct => AnswersAmqpAsync(uri, ct));
    }

    /// <summary>Ready = the broker answers the AMQP 0-9-1 protocol header with a Connection.Start method frame.</summary>
    private static async Task AnswersAmqpAsync(Uri uri, CancellationToken ct)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port == -1 ? 5672 : uri.Port, ct);
        await using var stream = client.GetStream();
        await stream.WriteAsync("AMQP\0\0\u0009\u0001"u8.ToArray(), ct);
        var frameType = new byte[1];
        if (await stream.ReadAsync(frameType, ct) != 1 || frameType[0] != 1)
            throw new IOException($"{uri.Host}:{uri.Port} accepted TCP but did not speak AMQP 0-9-1");
    }

    public async Task DisposeAsync()
    {
        if (_container is not null) await _container.DisposeAsync();
    }
}

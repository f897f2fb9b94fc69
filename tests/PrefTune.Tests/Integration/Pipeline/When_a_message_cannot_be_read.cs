using System.Text;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using RabbitMQ.Client;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>A malformed message on a real broker: it lands in the error queue with the reason, and the service goes on.</summary>
[Collection(ServersCollection.Name)]
public sealed class When_a_message_cannot_be_read(PostgresServer postgres, RabbitMqServer rabbit)
{
    [Fact]
    public async Task It_lands_in_the_error_queue_with_the_reason_and_runs_go_on()
    {
        var options = new PrefTuneOptions
        {
            Database = postgres.ConnectionString,
            Schema = PostgresServer.NewSchema(),
            Broker = rabbit.AmqpUri,
            DataFolder = Directory.CreateTempSubdirectory("preftune-test-").FullName,
            StageTimeoutSeconds = 60,
        };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.ChildProcesses, CancellationToken.None);
        var broker = BrokerAddress.Parse(rabbit.AmqpUri);
        var factory = new ConnectionFactory { HostName = broker.Host, Port = broker.Port, UserName = broker.Username, Password = broker.Password };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        const string queue = "preftune-sample-rollouts";
        // MassTransit creates the error queue on the first fault; declaring it first (same shape) lets the test read it.
        await channel.QueueDeclareAsync(queue + "_error", durable: true, exclusive: false, autoDelete: false);
        await channel.QueuePurgeAsync(queue + "_error");

        // A MassTransit envelope whose message is not a SampleRollouts at all (required fields missing, wrong types).
        var envelope = """
            {"messageId":"00000000-0000-0000-0000-000000000001","messageType":["urn:message:PrefTune.Messages:SampleRollouts"],
             "message":{"runId":"not-a-guid","responsesPerPrompt":"ten"}}
            """;
        var properties = new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = "00000000-0000-0000-0000-000000000001" };
        await channel.BasicPublishAsync("", queue, mandatory: false, basicProperties: properties, body: Encoding.UTF8.GetBytes(envelope));

        BasicGetResult? dead = null;
        for (var attempt = 0; attempt < 100 && dead is null; attempt++)
        {
            await Task.Delay(200);
            dead = await channel.BasicGetAsync(queue + "_error", autoAck: true);
        }

        Assert.NotNull(dead);
        Assert.Equal(envelope, Encoding.UTF8.GetString(dead.Body.Span));            // nothing lost
        var headers = dead.BasicProperties.Headers!;
        Assert.True(headers.ContainsKey("MT-Fault-Message"), string.Join(", ", headers.Keys));
        var reason = Encoding.UTF8.GetString((byte[])headers["MT-Fault-Message"]!);
        Assert.False(string.IsNullOrWhiteSpace(reason));

        var outcome = await session.RunAsync(TinyRuns.Bandit("dpo", DataSource.Online, steps: 4), null, CancellationToken.None);
        Assert.Equal("completed", outcome.Status);
        Assert.All(session.Children!.Processes, p => Assert.False(p.HasExited));
    }
}

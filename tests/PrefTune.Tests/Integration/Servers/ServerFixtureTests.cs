using Xunit;

namespace PrefTune.Tests.Integration.Servers;

[Collection(ServersCollection.Name)]
public sealed class When_the_server_fixtures_start(PostgresServer postgres, RabbitMqServer rabbit)
{
    [Fact]
    public void Should_expose_both_addresses()
    {
        Assert.Contains("Host=", postgres.ConnectionString, StringComparison.OrdinalIgnoreCase);
        var broker = new Uri(rabbit.AmqpUri);
        Assert.Equal("amqp", broker.Scheme);
        Assert.True(broker.Port > 0);
    }
}

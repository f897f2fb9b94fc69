using Xunit;

namespace PrefTune.Tests.Integration.Servers;

/// <summary>Tests that need only PostgreSQL (the storage tests): they run beside the "servers" collection.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}

/// <summary>Tests that need both servers (the pipeline over a real broker). Its tests run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class ServersCollection : ICollectionFixture<PostgresServer>, ICollectionFixture<RabbitMqServer>
{
    public const string Name = "servers";
}

using Npgsql;
using Testcontainers.PostgreSql;
using Xunit;

namespace PrefTune.Tests.Integration.Servers;

/// <summary>
/// One PostgreSQL per collection that asks for it ("postgres", "servers"): the server PREFTUNE_TEST_DATABASE names (infra/test.sh starts
/// one), else a Testcontainers container when a Docker engine exists. Tests isolate themselves in a fresh
/// schema (<see cref="NewSchema"/>), dropped with <see cref="DropSchemaAsync"/>.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    public const string Variable = "PREFTUNE_TEST_DATABASE";

    private PostgreSqlContainer? _container;

    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            ConnectionString = configured;
        }
        else if (ServerReadiness.DockerAvailable)
        {
            _container = new PostgreSqlBuilder("postgres:15-alpine").Build();
            await _container.StartAsync();
            ConnectionString = _container.GetConnectionString();
        }
        else
        {
            throw new InvalidOperationException(
                $"integration tests need PostgreSQL: set {Variable} (e.g. \"Host=127.0.0.1;Port=55432;Username=postgres;Database=postgres\" " +
                "after bash infra/dev/postgres-up.sh), or run them with a Docker engine; bash infra/test.sh does all of it");
        }
        await ServerReadiness.WaitAsync($"PostgreSQL ({Variable}={ConnectionString})", async ct =>
        {
            await using var connection = new NpgsqlConnection(ConnectionString);
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("select 1", connection);
            await command.ExecuteScalarAsync(ct);
        });
    }

    /// <summary>A schema name no other test uses.</summary>
    public static string NewSchema() => $"t_{Guid.NewGuid():N}";

    public async Task DropSchemaAsync(string schema)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"drop schema if exists {schema} cascade", connection);
        await drop.ExecuteNonQueryAsync();
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_container is not null) await _container.DisposeAsync();
    }
}

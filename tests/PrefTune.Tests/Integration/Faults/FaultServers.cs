using System.Diagnostics;
using Npgsql;
using PrefTune.Tests.Unit.Experiments;
using Xunit;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// A PostgreSQL and a RabbitMQ of the fault tests' own (127.0.0.1:59432 and :59672-59674), started and stopped
/// with the infra/dev scripts, never the shared test servers (PREFTUNE_TEST_*): these are the ones a test may
/// stop mid-run. Stops and starts keep state (PREFTUNE_PG_KEEP / PREFTUNE_RMQ_KEEP); disposing wipes it.
/// Each test isolates itself in a schema and a RabbitMQ virtual host of its own.
/// </summary>
public sealed class FaultServers : IAsyncLifetime
{
    public const int PostgresPort = 59432;
    /// <summary>The AMQP port; the broker also uses the next two (distribution, epmd).</summary>
    public const int RabbitMqPort = 59672;

    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(120);
    private readonly string _postgresBase = $"/tmp/preftune-faults-pg-{PostgresPort}";
    private readonly string _rabbitBase = $"/tmp/preftune-faults-rmq-{RabbitMqPort}";

    public bool PostgresRunning { get; private set; }
    public bool RabbitMqRunning { get; private set; }

    public string Database => $"Host=127.0.0.1;Port={PostgresPort};Username=postgres;Database=postgres";

    public string Broker(string virtualHost) => $"amqp://guest:guest@127.0.0.1:{RabbitMqPort}/{virtualHost}";

    public async Task InitializeAsync()
    {
        await RunScriptAsync("postgres-up.sh", keep: false);
        PostgresRunning = true;
        await RunScriptAsync("rabbitmq-up.sh", keep: false);
        RabbitMqRunning = true;
    }

    /// <summary>A fresh schema, created up front so that services and orchestrator do not race to create it.</summary>
    public async Task<string> NewSchemaAsync()
    {
        var schema = $"f_{Guid.NewGuid():N}"[..14];
        await using var connection = new NpgsqlConnection(Database + ";Pooling=false");
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"create schema {schema}", connection);
        await create.ExecuteNonQueryAsync();
        return schema;
    }

    /// <summary>A fresh virtual host that guest may use: no queue or message of an earlier test reaches this one.</summary>
    public async Task<string> NewVirtualHostAsync()
    {
        var vhost = $"f_{Guid.NewGuid():N}"[..14];
        await RunScriptAsync("rabbitmqctl.sh", keep: false, "add_vhost", vhost);
        await RunScriptAsync("rabbitmqctl.sh", keep: false, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*");
        return vhost;
    }

    public async Task StopRabbitMqAsync()
    {
        RabbitMqRunning = false;
        await RunScriptAsync("rabbitmq-down.sh", keep: true);
    }

    public async Task StartRabbitMqAsync()
    {
        await RunScriptAsync("rabbitmq-up.sh", keep: true);
        RabbitMqRunning = true;
    }

    public async Task StopPostgresAsync()
    {
        PostgresRunning = false;
        await RunScriptAsync("postgres-down.sh", keep: true);
    }

    public async Task StartPostgresAsync()
    {
        await RunScriptAsync("postgres-up.sh", keep: true);
        PostgresRunning = true;
    }

    /// <summary>Brings back whatever a failed test left stopped, so that the next test finds both servers up.</summary>
    public async Task EnsureRunningAsync()
    {
        if (!PostgresRunning) await StartPostgresAsync();
        if (!RabbitMqRunning) await StartRabbitMqAsync();
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await RunScriptAsync("rabbitmq-down.sh", keep: false);
        await RunScriptAsync("postgres-down.sh", keep: false);
    }

    private async Task RunScriptAsync(string script, bool keep, params string[] args)
    {
        var path = Path.Combine(ExperimentText.RepositoryRoot(), "infra", "dev", script);
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(path);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["PREFTUNE_PG_PORT"] = PostgresPort.ToString();
        info.Environment["PREFTUNE_PG_BASE"] = _postgresBase;
        info.Environment["PREFTUNE_RMQ_PORT"] = RabbitMqPort.ToString();
        info.Environment["PREFTUNE_RMQ_BASE"] = _rabbitBase;
        info.Environment.Remove("PREFTUNE_KEEP_DATA");
        info.Environment["PREFTUNE_PG_KEEP"] = keep ? "1" : "";
        info.Environment["PREFTUNE_RMQ_KEEP"] = keep ? "1" : "";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {script}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(ScriptTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"infra/dev/{script} {string.Join(' ', args)} did not finish within {ScriptTimeout.TotalSeconds} s");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"infra/dev/{script} {string.Join(' ', args)} failed (exit {process.ExitCode}): {await error}{await output}");
    }
}

/// <summary>The fault tests: they stop and start their own servers, so they share nothing with other collections.</summary>
[CollectionDefinition(Name)]
public sealed class FaultsCollection : ICollectionFixture<FaultServers>
{
    public const string Name = "faults";
}

using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PrefTune.Storage;
using PrefTune.Storage.Checkpoints;
using PrefTune.Storage.Postgres;

namespace PrefTune.ServiceDefaults;

/// <summary>The wiring every PrefTune process shares: options, connections, checkpoint store, bus.</summary>
public static class PrefTuneHost
{
    /// <summary>Options from configuration: PREFTUNE_* environment variables and --key value arguments.</summary>
    public static PrefTuneOptions ReadOptions(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .AddEnvironmentVariables("PREFTUNE_")
            .AddCommandLine(args)
            .Build();
        return configuration.Get<PrefTuneOptions>() ?? new PrefTuneOptions();
    }

    /// <summary>
    /// Makes the options concrete and checks them, failing fast with the address that does not answer:
    /// starts (or reuses) the private PostgreSQL when no database is configured.
    /// </summary>
    public static async Task<PrefTuneOptions> ConnectAsync(PrefTuneOptions options, CancellationToken cancellationToken = default)
    {
        var timeout = TimeSpan.FromSeconds(options.ConnectTimeoutSeconds);
        if (!string.IsNullOrWhiteSpace(options.Broker))
            await BrokerAddress.Parse(options.Broker).EnsureReachableAsync(timeout, cancellationToken);
        var database = string.IsNullOrWhiteSpace(options.Database)
            ? await EmbeddedPostgres.EnsureStartedAsync(Path.GetFullPath(options.DataFolder), cancellationToken)
            : options.Database;
        await DatabaseProbe.EnsureReachableAsync(database, timeout, cancellationToken);
        return options with { Database = database };
    }

    /// <summary>Registers the checkpoint store, the bus and the given roles' consumers.</summary>
    public static IServiceCollection AddPrefTuneServices(this IServiceCollection services, PrefTuneOptions options,
        IReadOnlyList<IServiceRole> roles, Action<IBusRegistrationConfigurator>? addMoreConsumers = null)
    {
        services.AddSingleton(options);
        services.AddSingleton<ICheckpointStore>(_ => new CachingCheckpointStore(CheckpointStoreFactory.Create(options.Checkpoints, options.Database, options.Schema,
            StorageResilienceOptions.Retrying(TimeSpan.FromSeconds(options.StoreRetrySeconds)))));
        foreach (var role in roles)
            role.AddServices(services);
        services.AddPrefTuneBus(options, bus =>
        {
            foreach (var role in roles)
                role.AddConsumers(bus);
            addMoreConsumers?.Invoke(bus);
        });
        return services;
    }

    /// <summary>The whole body of a single-role service's Program.cs.</summary>
    public static async Task<int> RunServiceAsync(IServiceRole role, string[] args)
    {
        try
        {
            var options = await ConnectAsync(ReadOptions(args));
            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddPrefTuneServices(options, [role]);
            await builder.Build().RunAsync();
            return 0;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine($"preftune {role.Name}: {e.Message}");
            return 2;
        }
    }
}

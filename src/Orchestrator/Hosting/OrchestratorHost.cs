using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PrefTune.Learner;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Sampler;
using PrefTune.Scorer;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>
/// The Orchestrator's process: the run driver and the event store, plus, on the in-memory transport,
/// the three stage services in the same process (one codebase, two ways to run it).
/// </summary>
public static class OrchestratorHost
{
    public static IReadOnlyList<IServiceRole> AllRoles => [new SamplerRole(), new ScorerRole(), new LearnerRole()];

    public static IServiceRole Role(string name) =>
        AllRoles.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"role: unknown service '{name}'; allowed: {string.Join(", ", AllRoles.Select(r => r.Name))}");

    /// <summary>A host for running experiments. <paramref name="options"/> must be connected (database resolved).</summary>
    public static IHost Build(PrefTuneOptions options)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // Signals belong to the command line (ShutdownSignals), which stops the run before the host.
        builder.Services.AddSingleton<IHostLifetime, CommandLineLifetime>();
        var roles = string.IsNullOrWhiteSpace(options.Broker) ? AllRoles : [];
        builder.Services.AddPrefTuneServices(options, roles, bus =>
        {
            // Every Orchestrator must hear every announcement: a queue of its own, deleted when it stops.
            bus.AddConsumer<ServiceAvailableConsumer>().Endpoint(e =>
            {
                e.InstanceId = "-" + NewId.NextGuid().ToString("N")[..12];
                e.Temporary = true;
            });
            bus.AddRequestClient<InitializePolicy>();
            bus.AddRequestClient<SampleRollouts>();
            bus.AddRequestClient<ScoreRollouts>();
            bus.AddRequestClient<TrainPolicy>();
            bus.AddRequestClient<EvaluatePolicy>();
        });
        builder.Services.AddPrefTuneEventStore(options.Database!, options.Schema);
        builder.Services.AddSingleton<ServiceDirectory>();
        builder.Services.AddSingleton<Stages>();
        builder.Services.AddSingleton<EventJournal>();
        builder.Services.AddSingleton<RunLeases>();
        builder.Services.AddSingleton<ServiceRestarts>();
        builder.Services.AddTransient<RunDriver>();
        builder.Services.AddTransient<RunReplay>();
        return builder.Build();
    }

    /// <summary>A host serving the given stage roles only (`preftune serve sampler learner`).</summary>
    public static IHost BuildService(PrefTuneOptions options, IReadOnlyList<IServiceRole> roles)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddPrefTuneServices(options, roles);
        return builder.Build();
    }
}

/// <summary>A host lifetime that leaves SIGINT and SIGTERM alone: the console lifetime would swallow them.</summary>
internal sealed class CommandLineLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

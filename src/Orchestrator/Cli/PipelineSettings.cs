using System.ComponentModel;
using PrefTune.ServiceDefaults;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>Where the broker, database and checkpoints are; unset flags fall back to PREFTUNE_* environment variables.</summary>
public class PipelineSettings : CommandSettings
{
    [CommandOption("--broker <URI>")]
    [Description("RabbitMQ address (amqp://user:password@host:port/vhost); services then run as separate processes. Default: PREFTUNE_BROKER, else everything in-process.")]
    public string? Broker { get; init; }

    [CommandOption("--database <CONNECTION>")]
    [Description("PostgreSQL connection string. Default: PREFTUNE_DATABASE, else a private PostgreSQL under the data folder.")]
    public string? Database { get; init; }

    [CommandOption("--data <DIR>")]
    [Description("Data folder (private PostgreSQL, service logs). Default: .preftune")]
    public string? DataFolder { get; init; }

    [CommandOption("--checkpoints <STORE>")]
    [Description("Checkpoint store: 'postgres' (default) or a directory every machine can reach.")]
    public string? Checkpoints { get; init; }

    [CommandOption("--schema <NAME>")]
    [Description("PostgreSQL schema of the event store and checkpoints. Default: PREFTUNE_SCHEMA, else preftune.")]
    public string? Schema { get; init; }

    [CommandOption("--external-services")]
    [Description("With --broker: do not start the services here; wait for ones started elsewhere (`preftune serve`).")]
    public bool ExternalServices { get; init; }

    /// <summary>In-process without a broker; with one, child processes unless the services run elsewhere.</summary>
    public Hosting.ServiceHosting Hosting(PrefTuneOptions options) =>
        string.IsNullOrWhiteSpace(options.Broker) ? PrefTune.Orchestrator.Hosting.ServiceHosting.InProcess
        : ExternalServices ? PrefTune.Orchestrator.Hosting.ServiceHosting.External : PrefTune.Orchestrator.Hosting.ServiceHosting.ChildProcesses;

    public PrefTuneOptions ToOptions()
    {
        var options = PrefTuneHost.ReadOptions([]);
        return options with
        {
            Broker = Broker ?? options.Broker,
            Database = Database ?? options.Database,
            DataFolder = DataFolder ?? options.DataFolder,
            Checkpoints = Checkpoints ?? options.Checkpoints,
            Schema = Schema ?? options.Schema,
        };
    }
}

using System.ComponentModel;
using PrefTune.ServiceDefaults;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>The event store plus the broker and the checkpoint store: what a stage service (`serve`) needs.</summary>
public class ServiceSettings : StoreSettings
{
    [CommandOption("--broker <URI>")]
    [Description("RabbitMQ address (amqp://user:password@host:port/vhost); services then run as separate processes. Default: PREFTUNE_BROKER, else everything in-process.")]
    public string? Broker { get; init; }

    [CommandOption("--checkpoints <STORE>")]
    [Description("Checkpoint store: 'postgres' (default) or a directory every machine can reach.")]
    public string? Checkpoints { get; init; }

    public override PrefTuneOptions ToOptions()
    {
        var options = base.ToOptions();
        return options with
        {
            Broker = Broker ?? options.Broker,
            Checkpoints = Checkpoints ?? options.Checkpoints,
        };
    }
}

using System.ComponentModel;
using PrefTune.ServiceDefaults;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// Where the event store is: all that a command which only reads recorded runs (`runs`, `show`) needs, so its
/// --help lists nothing else. Unset flags fall back to PREFTUNE_* environment variables.
/// </summary>
public class StoreSettings : CommandSettings
{
    [CommandOption("--database <CONNECTION>")]
    [Description("PostgreSQL connection string. Default: PREFTUNE_DATABASE, else a private PostgreSQL under the data folder.")]
    public string? Database { get; init; }

    [CommandOption("--data <DIR>")]
    [Description("Data folder (private PostgreSQL, service logs). Default: .preftune")]
    public string? DataFolder { get; init; }

    [CommandOption("--schema <NAME>")]
    [Description("PostgreSQL schema of the event store and checkpoints. Default: PREFTUNE_SCHEMA, else preftune.")]
    public string? Schema { get; init; }

    public virtual PrefTuneOptions ToOptions()
    {
        var options = PrefTuneHost.ReadOptions([]);
        return options with
        {
            Database = Database ?? options.Database,
            DataFolder = DataFolder ?? options.DataFolder,
            Schema = Schema ?? options.Schema,
        };
    }
}

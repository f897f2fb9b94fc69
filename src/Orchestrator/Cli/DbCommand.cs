using System.ComponentModel;
using System.Text.Json;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Postgres;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune db status|start|stop|repair`: the private PostgreSQL under the data folder.</summary>
public static class DbCommand
{
    public class Settings : CommandSettings
    {
        [CommandOption("--data <DIR>")]
        [Description("Data folder (private PostgreSQL). Default: PREFTUNE_DATAFOLDER, else .preftune")]
        public string? DataFolder { get; init; }

        public string Folder => Path.GetFullPath(DataFolder ?? PrefTuneHost.ReadOptions([]).DataFolder);
    }

    public sealed class StatusSettings : Settings
    {
        [CommandOption("--json")]
        [Description("Print the status as JSON.")]
        public bool Json { get; init; }
    }

    public static void Configure(IConfigurator<Settings> db)
    {
        db.SetDescription("The private PostgreSQL under the data folder: where it is, whether it runs, and what to do when it is damaged.");
        db.AddCommand<Status>("status").WithDescription("Where the data folder and cluster are, running or not, pid, port, PostgreSQL version, size on disk, auth.");
        db.AddCommand<Start>("start").WithDescription("Start the private server (or say where it already runs).");
        db.AddCommand<Stop>("stop").WithDescription("Stop the private server; its data stays for the next start.");
        db.AddCommand<Repair>("repair").WithDescription("Repair what the error messages point to (PG_VERSION, port file, password, trust auth); never deletes data.");
    }

    public sealed class Status : Command<StatusSettings>
    {
        public override int Execute(CommandContext context, StatusSettings settings, CancellationToken cancellationToken)
        {
            var status = EmbeddedPostgres.Status(settings.Folder);
            if (settings.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(status, ShowCommand.Json));
                return 0;
            }
            Console.WriteLine($"data folder  {status.DataFolder}");
            Console.WriteLine($"cluster      {status.ClusterDirectory}");
            Console.WriteLine($"state        {status.State}");
            if (status.Pid is { } pid) Console.WriteLine($"pid          {pid}");
            if (status.Port is { } port) Console.WriteLine($"port         {port}{(status.PortProblem is { } p ? $" ({p})" : "")}");
            if (status.Version is { } version) Console.WriteLine($"PostgreSQL   {version}");
            if (status.Auth is { } auth) Console.WriteLine($"auth         {auth}");
            Console.WriteLine($"size         {status.Bytes / 1e6:0.0} MB");
            if (status.Problem is { } problem) Console.WriteLine($"problem      {problem}");
            return 0;
        }
    }

    public sealed class Start : AsyncCommand<Settings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            await EmbeddedPostgres.EnsureStartedAsync(settings.Folder, cancellationToken);
            var status = EmbeddedPostgres.Status(settings.Folder);
            Console.WriteLine($"the private PostgreSQL of {status.DataFolder} runs: pid {status.Pid}, port {status.Port}");
            return 0;
        }
    }

    public sealed class Stop : AsyncCommand<Settings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            var stopped = await EmbeddedPostgres.StopAsync(settings.Folder);
            Console.WriteLine(stopped is null
                ? $"the private PostgreSQL of {settings.Folder} was not running"
                : $"stopped the private PostgreSQL of {settings.Folder} (pid {stopped.Pid}); its data stays for the next start");
            return 0;
        }
    }

    public sealed class Repair : AsyncCommand<Settings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            var done = await EmbeddedPostgres.RepairAsync(settings.Folder, cancellationToken);
            foreach (var line in done) Console.WriteLine(line);
            var status = EmbeddedPostgres.Status(settings.Folder);
            Console.WriteLine($"{(done.Count == 0 ? "nothing to repair: " : "")}the private PostgreSQL of {status.DataFolder} runs (pid {status.Pid}, port {status.Port})");
            return 0;
        }
    }
}

using System.Diagnostics;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>Runs the built `preftune` entry point as a user would: a separate process against a given database and schema.</summary>
public static class PrefTuneProcess
{
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(string database, string schema, params string[] args) =>
        RunAsync(args, env =>
        {
            env["PREFTUNE_DATABASE"] = database;
            env["PREFTUNE_SCHEMA"] = schema;
        });

    /// <summary>With no database configured: the private PostgreSQL of <paramref name="dataFolder"/>, as a user's first run gets it.</summary>
    public static Task<(int ExitCode, string Output, string Error)> RunWithDataFolderAsync(string dataFolder, params string[] args) =>
        RunAsync(args, env =>
        {
            env.Remove("PREFTUNE_DATABASE");
            env.Remove("PREFTUNE_SCHEMA");
            env["PREFTUNE_DATAFOLDER"] = dataFolder;
            // not durable, and need not be: a throwaway cluster
            env["PREFTUNE_POSTGRES_FLAGS"] = "-c fsync=off -c synchronous_commit=off";
        });

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string[] args, Action<IDictionary<string, string?>> environment)
    {
        var entry = typeof(Orchestrator.Cli.RunCommand).Assembly.Location;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(entry);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment.Remove("PREFTUNE_BROKER");
        environment(info.Environment);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }
}

using System.Diagnostics;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>Runs the built `preftune` entry point as a user would: a separate process against a given database and schema.</summary>
public static class PrefTuneProcess
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string database, string schema, params string[] args)
    {
        var entry = typeof(Orchestrator.Cli.RunCommand).Assembly.Location;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(entry);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["PREFTUNE_DATABASE"] = database;
        info.Environment["PREFTUNE_SCHEMA"] = schema;
        info.Environment.Remove("PREFTUNE_BROKER");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }
}

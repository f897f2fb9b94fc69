using System.Diagnostics;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>
/// Starts the stage services as separate processes of this same program (`preftune serve ROLE`) against
/// a broker, the way they would run on other machines. Connection settings travel in the environment,
/// not the command line, so credentials never show in a process list. Disposing kills them.
/// </summary>
public sealed class ServiceProcesses : IDisposable
{
    private readonly List<Process> _processes = [];

    public IReadOnlyList<Process> Processes => _processes;

    public static ServiceProcesses Start(PrefTuneOptions options, IEnumerable<string> roles, string logFolder)
    {
        Directory.CreateDirectory(logFolder);
        var started = new ServiceProcesses();
        foreach (var role in roles)
            started._processes.Add(StartOne(options, role, logFolder));
        return started;
    }

    public static Process StartOne(PrefTuneOptions options, string role, string logFolder)
    {
        var entry = typeof(ServiceProcesses).Assembly.Location;
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { entry, "serve", role },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["PREFTUNE_BROKER"] = options.Broker;
        info.Environment["PREFTUNE_DATABASE"] = options.Database;
        info.Environment["PREFTUNE_CHECKPOINTS"] = options.Checkpoints;
        info.Environment["PREFTUNE_SCHEMA"] = options.Schema;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start the {role} service");
        var log = new StreamWriter(Path.Combine(logFolder, $"{role}-{process.Id}.log")) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.Exited += (_, _) => { lock (log) log.Dispose(); };
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    process.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            process.Dispose();
        }
        _processes.Clear();
    }
}

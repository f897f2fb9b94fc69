using System.Diagnostics;
using System.Text;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// One running `preftune` process (a stage service or the orchestrator), started from the built entry point the
/// way a user or infra/services/start.sh starts it: settings in the environment, output to a log file.
/// Disposing kills it if it still runs.
/// </summary>
public sealed class PrefTuneProgram : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _error = new();
    private readonly List<string> _lines = [];
    private bool _closed;

    private PrefTuneProgram(string name, Process process, StreamWriter log, string logPath)
    {
        Name = name;
        _process = process;
        _log = log;
        LogPath = logPath;
    }

    public string Name { get; }
    public string LogPath { get; }
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>Standard output so far (the orchestrator's --json summary).</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Standard error so far (logs, failures).</summary>
    public string Error { get { lock (_error) return _error.ToString(); } }

    /// <summary>`preftune serve ROLE` against a broker and database (what ServiceProcesses and start.sh do).</summary>
    public static PrefTuneProgram Serve(string role, string broker, string database, string schema, string folder) =>
        Start(role, ["serve", role], folder, new Dictionary<string, string>
        {
            ["PREFTUNE_BROKER"] = broker,
            ["PREFTUNE_DATABASE"] = database,
            ["PREFTUNE_SCHEMA"] = schema,
            ["PREFTUNE_CHECKPOINTS"] = "postgres",
        });

    public static PrefTuneProgram Start(string name, IReadOnlyList<string> args, string folder, IReadOnlyDictionary<string, string> environment)
    {
        var entry = typeof(Orchestrator.Cli.RunCommand).Assembly.Location;
        // Through env(1) with SIGINT and SIGTERM set back to their defaults: a test run started in the background by a
        // shell without job control inherits SIGINT ignored, and an ignored signal stays ignored across exec, so the
        // signal tests would send a SIGINT the program never sees. env execs dotnet: the pid is the program's.
        var info = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("--default-signal=INT,TERM");
        info.ArgumentList.Add("dotnet");
        info.ArgumentList.Add(entry);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        // nothing of the test run's own configuration leaks in (PREFTUNE_BROKER, PREFTUNE_DATABASE of the shared servers...)
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("PREFTUNE_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(key);
        info.Environment["PREFTUNE_DATAFOLDER"] = Path.Combine(folder, "data");
        foreach (var (key, value) in environment) info.Environment[key] = value;

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start preftune {string.Join(' ', args)}");
        var logPath = Path.Combine(folder, $"{name}-{process.Id}.log");
        var log = new StreamWriter(logPath) { AutoFlush = true };
        var program = new PrefTuneProgram(name, process, log, logPath);
        process.OutputDataReceived += (_, e) => program.Record(e.Data, program._output);
        process.ErrorDataReceived += (_, e) => program.Record(e.Data, program._error);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return program;
    }

    private void Record(string? line, StringBuilder into)
    {
        if (line is null) return;
        lock (into) into.AppendLine(line);
        lock (_log)
        {
            _lines.Add(line);
            if (!_closed) _log.WriteLine(line);
        }
    }

    /// <summary>SIGKILL: no shutdown code runs, unacknowledged messages go back to their queues.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGKILL of this process alone: its own children are left to fend for themselves (or die with it).</summary>
    public void KillAlone()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit(10_000);
    }

    /// <summary>Sends <paramref name="signal"/> (2 SIGINT, 15 SIGTERM, ...) as `kill -SIG pid` does.</summary>
    public void Signal(int signal)
    {
        if (kill(_process.Id, signal) != 0)
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>Whether it exited within <paramref name="timeout"/> (it is left running otherwise).</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The last lines of its output, for failure messages.</summary>
    public string Tail(int lines = 25)
    {
        List<string> last;
        // stack frames crowd out what happened; the log file has them all
        lock (_log) last = _lines.Where(l => !l.TrimStart().StartsWith("at ", StringComparison.Ordinal) && !l.TrimStart().StartsWith("--- End of", StringComparison.Ordinal))
            .TakeLast(lines).ToList();
        return $"--- {Name} (pid {Id}{(HasExited ? $", exit {ExitCode}" : ", running")}), last lines (stack frames left out) of {LogPath}:\n"
            + string.Join('\n', last);
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) Kill();
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.Dispose();
        lock (_log)
        {
            _closed = true;
            _log.Dispose();
        }
    }
}

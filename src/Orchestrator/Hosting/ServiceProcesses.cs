using System.Collections.Concurrent;
using System.Diagnostics;
using PrefTune.Messages;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>
/// The stage services as child processes of this same program (`preftune serve ROLE`) against a broker, the way
/// they would run on other machines, supervised: a child that dies is started again after a backoff (1 s, 2 s,
/// 4 s, ... at most <see cref="MaxBackoff"/>), at most <see cref="RestartLimit"/> times in a row (a child that
/// stayed up <see cref="StableAfter"/> starts the count again), said on stderr and recorded on the run under way
/// (<see cref="ServiceRestarted"/>, through <see cref="ServiceRestarts"/>). Children die with this process even on
/// SIGKILL (<see cref="ParentWatch"/>): they are forked from one thread that lives as long as they do, because the
/// kernel's parent-death signal follows the forking thread, and a thread-pool thread may retire at any time.
/// Connection settings travel in the environment, not the command line, so credentials never show in a process
/// list. Disposing stops them: SIGTERM, then SIGKILL after <see cref="StopGrace"/>.
/// </summary>
public sealed class ServiceProcesses : IDisposable
{
    public const int RestartLimit = 5;
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(16);
    public static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    private readonly PrefTuneOptions _options;
    private readonly string _logFolder;
    private readonly ServiceRestarts _restarts;
    private readonly Dictionary<string, Process> _byRole = [];
    private readonly Dictionary<string, (int Count, DateTime Started)> _history = [];
    private readonly HashSet<Process> _handled = [];
    private readonly BlockingCollection<Action> _forks = [];
    private readonly Thread _forker;
    private volatile bool _stopping;

    private ServiceProcesses(PrefTuneOptions options, string logFolder, ServiceRestarts restarts)
    {
        (_options, _logFolder, _restarts) = (options, logFolder, restarts);
        _forker = new Thread(() => { foreach (var fork in _forks.GetConsumingEnumerable()) fork(); })
        {
            IsBackground = true, Name = "preftune service forker",
        };
        _forker.Start();
    }

    /// <summary>The processes serving each role now (a restarted role's new process).</summary>
    public IReadOnlyList<Process> Processes { get { lock (_byRole) return [.. _byRole.Values]; } }

    public static ServiceProcesses Start(PrefTuneOptions options, IEnumerable<string> roles, string logFolder, ServiceRestarts? restarts = null)
    {
        Directory.CreateDirectory(logFolder);
        var started = new ServiceProcesses(options, logFolder, restarts ?? new ServiceRestarts());
        foreach (var role in roles)
            started.Launch(role);
        return started;
    }

    private Process Launch(string role)
    {
        var process = Fork(role);
        lock (_byRole)
        {
            _byRole[role] = process;
            var (count, _) = _history.GetValueOrDefault(role);
            _history[role] = (count, DateTime.UtcNow);
        }
        process.Exited += (_, _) => OnExited(role, process);
        process.EnableRaisingEvents = true;
        if (process.HasExited) OnExited(role, process); // died before the handler was attached
        return process;
    }

    /// <summary>Starts the process on the forker thread (see the class comment) and waits for it.</summary>
    private Process Fork(string role)
    {
        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        _forks.Add(() =>
        {
            try { started.SetResult(StartOne(_options, role, _logFolder)); }
            catch (Exception e) { started.SetException(e); }
        });
        return started.Task.GetAwaiter().GetResult();
    }

    private void OnExited(string role, Process process)
    {
        if (_stopping || ShutdownSignals.Token.IsCancellationRequested) return;
        int restart;
        lock (_byRole)
        {
            // the Exited event and the check after attaching it may both report one death
            if (!_byRole.TryGetValue(role, out var current) || current != process || !_handled.Add(process)) return;
            var (count, started) = _history[role];
            restart = DateTime.UtcNow - started >= StableAfter ? 1 : count + 1;
            _history[role] = (restart, started);
        }
        var exit = ExitCodeOf(process);
        if (restart > RestartLimit)
        {
            Say($"the {role} service (pid {process.Id}) exited with {exit} after {RestartLimit} restarts; not starting it again (the run fails when the stage times out)");
            return;
        }
        var delay = TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, restart - 1)));
        Say($"the {role} service (pid {process.Id}) exited with {exit}; starting it again in {delay.TotalSeconds:0} s (restart {restart} of {RestartLimit})");
        _ = Task.Delay(delay).ContinueWith(_ =>
        {
            if (_stopping) return;
            try
            {
                var replacement = Launch(role);
                Say($"the {role} service runs again (pid {replacement.Id})");
                _restarts.Add(new ServiceRestarted
                {
                    RunId = Guid.Empty, Role = role, OldProcessId = process.Id, ExitCode = exit, NewProcessId = replacement.Id,
                    Restart = restart, RestartLimit = RestartLimit, RestartedAt = DateTimeOffset.UtcNow,
                });
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or ObjectDisposedException)
            {
                Say($"could not start the {role} service again: {e.Message}");
            }
        }, TaskScheduler.Default);
    }

    private static int ExitCodeOf(Process process)
    {
        try { return process.ExitCode; }
        catch (InvalidOperationException) { return -1; }
    }

    private static void Say(string message) => Console.Error.WriteLine($"preftune: {message}");

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
        info.Environment[ParentWatch.Variable] = Environment.ProcessId.ToString();
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start the {role} service");
        var log = new StreamWriter(Path.Combine(logFolder, $"{role}-{process.Id}.log")) { AutoFlush = true };
        var closed = false;
        void Write(string? line) { if (line is not null) lock (log) if (!closed) log.WriteLine(line); }
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        process.Exited += (_, _) => { lock (log) { closed = true; log.Dispose(); } };
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public void Dispose()
    {
        _stopping = true;
        var processes = Processes;
        foreach (var process in processes)
        {
            try
            {
                if (!process.HasExited) LibC.kill(process.Id, LibC.SIGTERM);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }
        var deadline = Stopwatch.StartNew();
        foreach (var process in processes)
        {
            try
            {
                var left = StopGrace - deadline.Elapsed;
                if (!process.HasExited && !process.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero))
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
        lock (_byRole) _byRole.Clear();
        _forks.CompleteAdding(); // the forker thread ends only now that its children are gone
    }
}

/// <summary>Restarts not yet recorded: the supervisor adds them, the run under way records them with its next facts.</summary>
public sealed class ServiceRestarts
{
    private readonly ConcurrentQueue<ServiceRestarted> _pending = new();

    public void Add(ServiceRestarted restart) => _pending.Enqueue(restart);

    /// <summary>Every restart since the last call, as facts of <paramref name="runId"/>.</summary>
    public IReadOnlyList<ServiceRestarted> Drain(Guid runId)
    {
        var drained = new List<ServiceRestarted>();
        while (_pending.TryDequeue(out var restart))
            drained.Add(restart with { RunId = runId });
        return drained;
    }
}

using System.Diagnostics;
using System.Text.Json;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Faults;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PrefTune.Tests.Integration.Lifecycle;

/// <summary>
/// One lifecycle test's world on the fault servers: a schema and a RabbitMQ virtual host of its own, an experiment
/// file in a temporary folder, and the real `preftune` processes the test starts, signals and kills. Disposing kills
/// whatever still runs.
/// </summary>
public sealed class LifecycleRun : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private readonly FaultServers _servers;
    private readonly ITestOutputHelper _output;
    private readonly List<PrefTuneProgram> _started = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private LifecycleRun(FaultServers servers, ITestOutputHelper output, string schema, string virtualHost, string folder)
    {
        (_servers, _output, Schema, VirtualHost, Folder) = (servers, output, schema, virtualHost, folder);
        File = Path.Combine(folder, "lifecycle.yaml");
    }

    public string Schema { get; }
    public string VirtualHost { get; }
    public string Folder { get; }
    /// <summary>The experiment file.</summary>
    public string File { get; }
    public string Broker => _servers.Broker(VirtualHost);
    public string Database => _servers.Database;

    public static async Task<LifecycleRun> CreateAsync(FaultServers servers, ITestOutputHelper output, string name, string experiment)
    {
        await servers.EnsureRunningAsync();
        var folder = Directory.CreateTempSubdirectory($"preftune-lifecycle-{name}-").FullName;
        var run = new LifecycleRun(servers, output, await servers.NewSchemaAsync(), await servers.NewVirtualHostAsync(), folder);
        await System.IO.File.WriteAllTextAsync(run.File, experiment);
        return run;
    }

    /// <summary>A small online bandit experiment: B = 20, M = 10, T = 1 (two gradient steps per batch), evaluated at the start and the end.</summary>
    public static string Experiment(int steps, params string[] methods) => $$"""
        name: lifecycle
        seeds: [5]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32, reference_steps: 50}
        loop: {B: 20, C: 10, M: 10, T: 1, gradient_steps: {{steps}}, learning_rate: 0.01, eval_every: 100000, eval_samples: 40, dataset_prompts: 8}
        methods:
        {{string.Join("\n", methods.Select(m => $"  - {{name: {m}, data: online}}"))}}
        """;

    /// <summary>The fault tests' stage settings, and leases of 3 s (renewed every second) so that renewals show within a test.</summary>
    private static readonly IReadOnlyDictionary<string, string> Settings =
        new Dictionary<string, string>(FaultRun.StageSettings) { ["PREFTUNE_LEASESECONDS"] = "3" };

    /// <summary>`preftune ARGS --database DB --schema S`, left running.</summary>
    public PrefTuneProgram Start(string name, params string[] args)
    {
        var program = PrefTuneProgram.Start(name, [.. args, "--database", Database, "--schema", Schema], Folder, Settings);
        _started.Add(program);
        Note($"started {name} (pid {program.Id}): preftune {string.Join(' ', args)}");
        return program;
    }

    /// <summary>`preftune ARGS` to its end (within <paramref name="timeout"/>): exit code, stdout, stderr.</summary>
    public async Task<(int ExitCode, string Output, string Error)> RunToEndAsync(TimeSpan timeout, params string[] args)
    {
        var program = Start(args[0], args);
        if (!await program.WaitForExitAsync(timeout))
            throw new XunitException($"preftune {string.Join(' ', args)} did not end within {timeout.TotalSeconds:0} s\n{Diagnostics()}");
        Note($"{args[0]} exited with {program.ExitCode}");
        return (program.ExitCode, program.Output, program.Error);
    }

    public void Note(string what) => _output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:0.0} s  {what}");

    /// <summary>Events of <paramref name="type"/> (Marten's stored name) in the schema so far, by plain SQL.</summary>
    public async Task<int> CountAsync(string type)
    {
        await using var connection = new NpgsqlConnection(Database + ";Pooling=false");
        await connection.OpenAsync();
        await using var exists = new NpgsqlCommand($"select to_regclass('{Schema}.mt_events') is not null", connection);
        if (!(bool)(await exists.ExecuteScalarAsync())!) return 0;
        await using var count = new NpgsqlCommand($"select count(*) from {Schema}.mt_events where type = @type", connection);
        count.Parameters.AddWithValue("type", type);
        return (int)(long)(await count.ExecuteScalarAsync())!;
    }

    /// <summary>Waits until at least <paramref name="count"/> events of <paramref name="type"/> are recorded while <paramref name="owner"/> runs.</summary>
    public async Task WaitForAsync(string type, int count, PrefTuneProgram owner, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var now = await CountAsync(type);
            if (now >= count) { Note($"{now} {type}"); return; }
            if (owner.HasExited)
                throw new XunitException($"{owner.Name} exited before {count} {type} were recorded ({now} were)\n{Diagnostics()}");
            if (clock.Elapsed > timeout)
                throw new XunitException($"fewer than {count} {type} ({now}) within {timeout.TotalSeconds:0} s\n{Diagnostics()}");
            await Task.Delay(Poll);
        }
    }

    /// <summary>Every run in the schema, in start order, as recorded.</summary>
    public async Task<IReadOnlyList<RecordedRun>> RunsAsync()
    {
        using var store = EventStoreRegistration.For(Database + ";Pooling=false", Schema);
        await using var session = store.QuerySession();
        var started = (await Marten.QueryableExtensions.ToListAsync(session.Events.QueryRawEventDataOnly<RunStarted>())).OrderBy(s => s.StartedAt).ToList();
        var runs = new List<RecordedRun>();
        foreach (var run in started)
            runs.Add((await RecordedRun.LoadAsync(store, run.RunId, CancellationToken.None))!);
        return runs;
    }

    /// <summary>The run's lease as stored, if any.</summary>
    public async Task<RunLease?> LeaseAsync(Guid runId)
    {
        using var store = EventStoreRegistration.For(Database + ";Pooling=false", Schema);
        await using var session = store.QuerySession();
        return await session.LoadAsync<RunLease>(runId);
    }

    /// <summary>`preftune runs --json`: run id to the status it shows.</summary>
    public async Task<IReadOnlyDictionary<Guid, string>> ListedStatusesAsync()
    {
        var (code, output, error) = await RunToEndAsync(TimeSpan.FromSeconds(60), "runs", "--json");
        if (code != 0) throw new XunitException($"runs exited with {code}: {error}");
        using var listed = JsonDocument.Parse(output);
        return listed.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("id").GetGuid(), r => r.GetProperty("status").GetString()!);
    }

    /// <summary>The processes whose parent is <paramref name="pid"/> (from /proc).</summary>
    public static IReadOnlyList<int> ChildrenOf(int pid) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Select(n => int.TryParse(n, out var p) ? p : 0).Where(p => p > 0)
            .Where(p => ParentOf(p) == pid).ToList();

    /// <summary>Whether <paramref name="pid"/> is a process that still runs (not gone, not a zombie waiting to be reaped).</summary>
    public static bool IsAlive(int pid) => LeaseOwner.StartTimeOf(pid) is not null;

    private static int? ParentOf(int pid)
    {
        try
        {
            var stat = System.IO.File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Waits until none of <paramref name="pids"/> runs; returns those still alive after <paramref name="timeout"/>.</summary>
    public static async Task<IReadOnlyList<int>> WaitUntilGoneAsync(IReadOnlyList<int> pids, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout && pids.Any(IsAlive))
            await Task.Delay(Poll);
        return pids.Where(IsAlive).ToList();
    }

    public string Diagnostics() => string.Join('\n', _started.Select(p => p.Tail()));

    public ValueTask DisposeAsync()
    {
        foreach (var program in _started) program.Dispose();
        NpgsqlConnection.ClearAllPools();
        return ValueTask.CompletedTask;
    }
}

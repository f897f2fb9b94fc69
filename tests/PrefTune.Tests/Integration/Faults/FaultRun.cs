using System.Diagnostics;
using Marten;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// One fault test's run: its own schema and virtual host on the fault servers, the sampler, scorer and learner
/// as separate `preftune serve` processes, and the orchestrator as `preftune run FILE --external-services --json`,
/// with the stage settings the fault tests need. The test injects its fault in between.
/// </summary>
public sealed class FaultRun : IAsyncDisposable
{
    /// <summary>
    /// A small online run: the categorical bandit, REINFORCE, 4 gradient steps per batch (B = 20, M = 10, T = 2:
    /// each sample is used twice), evaluated only at the start and the end, on few samples. 100 batches: each
    /// takes ~0.1 s here (three stage round trips and two appends), so the run lasts ~10 s undisturbed, longer
    /// than a broker takes to stop (3-10 s on a loaded machine) and to be started again.
    /// </summary>
    public const int GradientSteps = 400;

    private static readonly string Experiment = $$"""
        name: fault
        seeds: [11]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32, reference_steps: 50}
        loop: {B: 20, C: 10, M: 10, T: 2, gradient_steps: {{GradientSteps}}, learning_rate: 0.01, eval_every: 100000, eval_samples: 40}
        methods:
          - {name: reinforce, data: online}
        """;

    /// <summary>
    /// The same faults on a language model: the shipped stories260K experiment (Min Length, REINFORCE) with its model
    /// and prompts named by absolute path, 2 prompts x 4 responses of at most 24 new tokens a batch, 2 gradient steps
    /// each (M = 4). 120 steps: ~0.3 s a batch here, so it too outlasts a service killed and started again.
    /// </summary>
    public const int LanguageModelGradientSteps = 120;

    public static string LanguageModelExperiment()
    {
        var root = Unit.Experiments.ExperimentText.RepositoryRoot();
        return $$"""
            name: fault-lm
            seeds: [11]
            task:
              kind: length
              length: {goal: min, prompts: "{{Path.Combine(root, "experiments", "prompts", "story-endings.jsonl")}}"}
              model: {path: "{{Unit.LanguageModels.Fixtures.StoriesHf}}", stop_ids: "1", max_new_tokens: 24}
            loop: {B: 8, C: 4, M: 4, T: 1, gradient_steps: {{LanguageModelGradientSteps}}, learning_rate: 0.0001, eval_every: 100000, eval_samples: 8}
            methods:
              - {name: reinforce, data: online}
            """;
    }

    /// <summary>The fault comes once this many updates are recorded: two batches in, well before the end.</summary>
    public const int UpdatesBeforeFault = 8;

    /// <summary>Per-attempt and total budget of a stage call (the Polly settings; the total alone exists today).</summary>
    public static readonly IReadOnlyDictionary<string, string> StageSettings = new Dictionary<string, string>
    {
        ["PREFTUNE_STAGEATTEMPTSECONDS"] = "5",
        ["PREFTUNE_STAGETIMEOUTSECONDS"] = "90",
    };

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private readonly FaultServers _servers;
    private readonly Dictionary<string, PrefTuneProgram> _services = [];
    private readonly List<PrefTuneProgram> _started = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<string> _timeline = [];

    private readonly ITestOutputHelper _output;

    private FaultRun(FaultServers servers, ITestOutputHelper output, string schema, string virtualHost, string folder)
    {
        _servers = servers;
        _output = output;
        Schema = schema;
        VirtualHost = virtualHost;
        Folder = folder;
    }

    public string Schema { get; }
    public string VirtualHost { get; }
    public string Folder { get; }
    public string Broker => _servers.Broker(VirtualHost);
    /// <summary>The experiment's gradient steps (<see cref="GradientSteps"/> for the bandit's).</summary>
    public int Steps { get; private init; }
    public PrefTuneProgram Orchestrator { get; private set; } = null!;

    /// <summary>Starts the three services, then the orchestrator (which waits until all three answer).</summary>
    public static async Task<FaultRun> StartAsync(FaultServers servers, ITestOutputHelper output, string name, string? experiment = null,
        int steps = GradientSteps)
    {
        await servers.EnsureRunningAsync();
        var folder = Directory.CreateTempSubdirectory($"preftune-fault-{name}-").FullName;
        var run = new FaultRun(servers, output, await servers.NewSchemaAsync(), await servers.NewVirtualHostAsync(), folder) { Steps = steps };
        foreach (var role in new[] { "sampler", "scorer", "learner" })
            run.StartService(role);
        var file = Path.Combine(folder, "fault.yaml");
        await File.WriteAllTextAsync(file, experiment ?? Experiment);
        run.Orchestrator = run.Track(PrefTuneProgram.Start("orchestrator",
            ["run", file, "--broker", run.Broker, "--database", servers.Database, "--schema", run.Schema,
             "--external-services", "--json", "--output", Path.Combine(folder, "out")],
            folder, StageSettings));
        run.Note($"started services and orchestrator (schema {run.Schema}, vhost {run.VirtualHost})");
        return run;
    }

    public PrefTuneProgram Service(string role) => _services[role];

    /// <summary>Starts a (new) process for <paramref name="role"/>; the previous one, if any, is left as it is.</summary>
    public PrefTuneProgram StartService(string role)
    {
        var service = Track(PrefTuneProgram.Serve(role, Broker, _servers.Database, Schema, Folder));
        _services[role] = service;
        Note($"started {role} (pid {service.Id})");
        return service;
    }

    /// <summary>Records a step of the test with its time, for the failure message.</summary>
    public void Note(string what)
    {
        var line = $"{_clock.Elapsed.TotalSeconds,6:0.0} s  {what}";
        _timeline.Add(line);
        _output.WriteLine(line);
    }

    /// <summary>Waits until the run has recorded at least <paramref name="count"/> UpdateApplied; returns how many it had.</summary>
    public async Task<int> WaitForUpdatesAsync(int count, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var updates = await CountUpdatesAsync();
            if (updates >= count)
            {
                Note($"{updates} updates recorded");
                return updates;
            }
            if (Orchestrator.HasExited)
                throw new XunitException($"the orchestrator exited before {count} updates were recorded ({updates} were)\n{Diagnostics()}");
            if (deadline.Elapsed > timeout)
                throw new XunitException($"fewer than {count} updates ({updates}) recorded within {timeout.TotalSeconds:0} s\n{Diagnostics()}");
            await Task.Delay(Poll);
        }
    }

    /// <summary>UpdateApplied events in the run's schema so far (plain SQL: Marten on this side must not race the orchestrator to create tables).</summary>
    public async Task<int> CountUpdatesAsync()
    {
        await using var connection = new NpgsqlConnection(_servers.Database + ";Pooling=false");
        await connection.OpenAsync();
        await using var exists = new NpgsqlCommand($"select to_regclass('{Schema}.mt_events') is not null", connection);
        if (!(bool)(await exists.ExecuteScalarAsync())!) return 0;
        await using var count = new NpgsqlCommand($"select count(*) from {Schema}.mt_events where type = 'update_applied'", connection);
        return (int)(long)(await count.ExecuteScalarAsync())!;
    }

    /// <summary>Waits for the orchestrator to exit; kills it and fails the test if it has not within <paramref name="deadline"/>.</summary>
    public async Task WaitForOrchestratorAsync(TimeSpan deadline)
    {
        if (!await Orchestrator.WaitForExitAsync(deadline))
        {
            Note($"orchestrator still running {deadline.TotalSeconds:0} s later: killed; {await DescribeUpdatesAsync()}");
            var diagnostics = Diagnostics();
            Orchestrator.Kill();
            throw new XunitException($"the orchestrator did not finish within {deadline.TotalSeconds:0} s of the fault's end (it must never hang)\n{diagnostics}");
        }
        Note($"orchestrator exited with {Orchestrator.ExitCode}; {await DescribeUpdatesAsync()}");
    }

    /// <summary>Fails the test as inconclusive when every update was recorded before the fault took effect (too fast a run, too slow a fault).</summary>
    public async Task AssertFaultCameMidRunAsync(string fault)
    {
        var updates = await CountUpdatesAsync();
        Note($"{fault}: {updates} updates recorded, orchestrator {(Orchestrator.HasExited ? "exited" : "running")}");
        if (updates >= Steps)
            throw new XunitException($"inconclusive: all {updates} updates were recorded before the fault ({fault}) took effect; give the run more gradient steps\n{Diagnostics()}");
    }

    /// <summary>How many updates the run recorded and over what span (from the events' timestamps).</summary>
    private async Task<string> DescribeUpdatesAsync()
    {
        try
        {
            await using var connection = new NpgsqlConnection(_servers.Database + ";Pooling=false");
            await connection.OpenAsync();
            await using var query = new NpgsqlCommand(
                $"select count(*), extract(epoch from max(timestamp) - min(timestamp)) from {Schema}.mt_events where type = 'update_applied'", connection);
            await using var reader = await query.ExecuteReaderAsync();
            await reader.ReadAsync();
            return $"{reader.GetInt64(0)} updates recorded over {(reader.IsDBNull(1) ? 0 : reader.GetDecimal(1)):0.0} s";
        }
        catch (NpgsqlException e)
        {
            return $"updates not counted ({e.Message})";
        }
    }

    /// <summary>The run's event stream, in order (the schema holds this one run).</summary>
    public async Task<IReadOnlyList<object>> EventsAsync()
    {
        using var store = EventStoreRegistration.For(_servers.Database + ";Pooling=false", Schema);
        await using var session = store.QuerySession();
        var started = await session.Events.QueryRawEventDataOnly<RunStarted>().ToListAsync();
        if (started.Count != 1)
            throw new XunitException($"expected one run in schema {Schema}, found {started.Count}\n{Diagnostics()}");
        var stream = await session.Events.FetchStreamAsync(started[0].RunId);
        return stream.Select(e => e.Data).ToList();
    }

    /// <summary>The orchestrator exited 0 and the stream satisfies <see cref="RunInvariants.AssertCompleted"/>.</summary>
    public async Task AssertCompletedAsync()
    {
        var events = await EventsAsync();
        WithDiagnostics(() => RunInvariants.AssertCompleted(events, Steps));
        WithDiagnostics(() => Xunit.Assert.True(Orchestrator.ExitCode == 0, $"the run completed but the orchestrator exited with {Orchestrator.ExitCode}"));
    }

    /// <summary>The run completed (as in <see cref="AssertCompletedAsync"/>) or failed recording why (<see cref="RunInvariants.AssertFailedWithReason"/>).</summary>
    public async Task<string> AssertCompletedOrFailedWithReasonAsync()
    {
        var events = await EventsAsync();
        if (events[^1] is RunCompleted)
        {
            await AssertCompletedAsync();
            return "completed";
        }
        WithDiagnostics(() => RunInvariants.AssertFailedWithReason(events));
        WithDiagnostics(() => Xunit.Assert.True(Orchestrator.ExitCode != 0, "the run failed but the orchestrator exited with 0"));
        return $"failed: {((RunFailed)events[^1]).Reason}";
    }

    private void WithDiagnostics(Action assertion)
    {
        try
        {
            assertion();
        }
        catch (XunitException e)
        {
            throw new XunitException($"{e.Message}\n{Diagnostics()}");
        }
    }

    /// <summary>The test's timeline and the last lines of every process it started.</summary>
    public string Diagnostics() =>
        "timeline:\n" + string.Join('\n', _timeline) + "\n" + string.Join('\n', _started.Select(p => p.Tail()));

    private PrefTuneProgram Track(PrefTuneProgram program)
    {
        _started.Add(program);
        return program;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var program in _started) program.Dispose();
        NpgsqlConnection.ClearAllPools();
        await _servers.EnsureRunningAsync();
    }
}

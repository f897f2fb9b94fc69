using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

/// <summary>Options on the shared test PostgreSQL with a schema of the test's own, and small on-policy specs.</summary>
internal static class RunsUnderTest
{
    public static PrefTuneOptions Options(PostgresServer postgres, string? schema = null) => new()
    {
        Database = postgres.ConnectionString, Schema = schema ?? PostgresServer.NewSchema(), StageTimeoutSeconds = 60,
    };

    /// <summary>B = M = C = 10, T = 1: one gradient step per iteration, so batch staleness and per-step lag coincide.</summary>
    public static RunSpec OneStepPerBatch(string method = "reinforce", int steps = 16, int maxStaleness = 0) =>
        TinyRuns.Bandit(method, DataSource.Online, steps) with
        {
            Loop = TinyRuns.Bandit(method, DataSource.Online, steps).Loop with { B = 10, M = 10, T = 1, EvalEvery = 8, MaxStaleness = maxStaleness },
        };

    /// <summary>Runs <paramref name="spec"/> until it has recorded <paramref name="atStep"/> gradient steps, then cancels it as if
    /// its Orchestrator died there (nothing more is recorded); returns the run's id.</summary>
    public static async Task<Guid> InterruptAsync(PipelineSession session, RunSpec spec, int atStep)
    {
        using var crash = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Step >= atStep) crash.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => session.RunAsync(spec, progress, crash.Token));
        return progress.RunId;
    }

    /// <summary>Per training batch: the learner's version when it was handed over minus each of its samples' sampling version.</summary>
    public static List<int> BatchStaleness(RecordedRun run)
    {
        var sampledAt = run.Events.OfType<RolloutsGenerated>().SelectMany(g => g.Rollouts).ToDictionary(r => r.SampleId, r => r.PolicyVersion);
        return run.Assembled.SelectMany(a => a.SampleIds.Select(id => a.PolicyVersion - sampledAt[id])).ToList();
    }
}

/// <summary>Progress reported on the caller's thread, so a test can cancel a run at an exact step (an Orchestrator that dies there).</summary>
internal sealed class SynchronousProgress(Action<RunProgress> report) : IProgress<RunProgress>
{
    public Guid RunId { get; private set; }

    public void Report(RunProgress value)
    {
        RunId = value.RunId;
        report(value);
    }
}

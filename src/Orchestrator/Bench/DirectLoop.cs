using System.Diagnostics;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Orchestrator.Bench;

/// <summary>
/// The model work of a run with no messaging and no event store: the same Algorithm 1 (<see cref="Algorithm1"/>), its
/// stage calls answered in this process (<see cref="InProcessStages"/>) and its facts kept nowhere. The pipeline's time
/// minus this is what the services cost.
/// </summary>
public static class DirectLoop
{
    /// <summary>The run's outcome (its numbers are the pipeline's: same requests, same seeds) and how long it took.</summary>
    public static async Task<RunOutcome> RunAsync(RunSpec spec, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var stages = new InProcessStages();
        var algorithm = new Algorithm1(stages, Unrecorded.Instance);
        var run = new RunState(Guid.NewGuid(), spec);
        await algorithm.InitializeAsync(run, ct);
        await algorithm.TrainAsync(run, await algorithm.SourceAsync(run, null, ct), 0, null, null, ct);
        return run.Outcome("completed", null, clock.Elapsed);
    }
}

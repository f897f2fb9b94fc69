using System.Diagnostics;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;

namespace PrefTune.Orchestrator.Runs;

/// <summary>One checkpoint of a replay beside the recorded one.</summary>
public sealed record ReplayedCheckpoint(int Version, string Recorded, string Replayed)
{
    public bool Matches => Recorded == Replayed;
}

/// <summary>What an exact replay found: every checkpoint compared, and why it might not have been exact.</summary>
public sealed record ReplayReport(Guid RunId, IReadOnlyList<ReplayedCheckpoint> Checkpoints, IReadOnlyList<string> Caveats, TimeSpan Elapsed, TimeSpan Original)
{
    public int Matched => Checkpoints.Count(c => c.Matches);
    public bool Exact => Checkpoints.Count > 0 && Matched == Checkpoints.Count;
}

/// <summary>
/// `preftune replay RUN`: the Learner's trajectory rebuilt from the recorded batches alone (no Sampler, no
/// Scorer): the policy is initialised from the run's seed, then every recorded batch is trained in order with
/// the run's seeds, and each checkpoint's content hash is compared with the recorded one. The result is recorded
/// on the run's stream as <see cref="RunReplayed"/>. It reads no recorded weights, so it works however many versions
/// were never kept or were pruned; its own checkpoints are transient copies, released as it goes.
/// </summary>
public sealed class RunReplay(Stages stages, EventJournal journal, ICheckpointStore checkpoints)
{
    public async Task<ReplayReport> ReplayAsync(RecordedRun recorded, CancellationToken ct)
    {
        var spec = recorded.Started.Spec;
        var caveats = RunEnvironment.Differences(recorded.Started.Environment, spec.TorchThreads).ToList();
        if (recorded.Started.ReplayOf is not null)
            caveats.Add("this run is itself a counterfactual replay; its batches come from run " + recorded.Started.ReplayOf);
        var clock = Stopwatch.StartNew();
        var replayId = NewId.NextGuid(); // a Learner state of its own: nothing is answered from the original's memory
        var initialized = await stages.InitializeAsync(new InitializePolicy { RunId = replayId, Task = spec.Task, Seed = spec.Seed, TorchThreads = spec.TorchThreads }, ct);
        var compared = new List<ReplayedCheckpoint>();
        if (recorded.Initialized is { } initial)
            compared.Add(new ReplayedCheckpoint(0, initial.Policy.Sha256, initialized.Policy.Sha256));

        try
        {
            await Algorithm1.RetrainAsync(stages, spec, replayId, initialized.Reference, initialized.Policy, recorded,
                keep: (_, _) => false, // re-derived to compare hashes; the run's own kept ones are stored already
                compare: async (_, original, trained) =>
                {
                    compared.Add(new ReplayedCheckpoint(original.Checkpoint.Version, original.Checkpoint.Sha256, trained.Checkpoint.Sha256));
                    await checkpoints.ReleaseTransientAsync(replayId, trained.Checkpoint.Version, ct);
                }, ct);
        }
        finally
        {
            await checkpoints.ReleaseTransientAsync(replayId, int.MaxValue, CancellationToken.None);
        }

        var started = recorded.Started.StartedAt;
        var ended = recorded.Events.OfType<RunCompleted>().Select(c => (DateTimeOffset?)c.CompletedAt).LastOrDefault()
            ?? recorded.Events.OfType<RunFailed>().Select(f => (DateTimeOffset?)f.FailedAt).LastOrDefault() ?? started;
        var report = new ReplayReport(recorded.Started.RunId, compared, caveats, clock.Elapsed, ended - started);
        await journal.AppendAsync(report.RunId, ct, new RunReplayed
        {
            RunId = report.RunId, Checkpoints = compared.Count, Matched = report.Matched,
            FirstMismatch = compared.FirstOrDefault(c => !c.Matches)?.Version, Caveats = caveats,
            Seconds = clock.Elapsed.TotalSeconds, ReplayedAt = DateTimeOffset.UtcNow,
        });
        return report;
    }
}

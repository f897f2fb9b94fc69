using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// Which checkpoints a run keeps for good, and which stored ones it needs: the one rule the Learner's puts (through
/// <see cref="TrainPolicy.KeepCheckpoint"/>), resume and `preftune prune` share. Weights are derivable (replay re-trains
/// them from the recorded batches), so only a few are worth the disk: version 0 (the reference), the batch that crosses
/// each multiple of <see cref="LoopSpec.CheckpointEvery"/> gradient steps, and the end of the run.
/// </summary>
public static class CheckpointRetention
{
    /// <summary>Whether the checkpoint a batch produces (from <paramref name="versionBefore"/> to <paramref name="versionAfter"/>)
    /// is kept; <paramref name="last"/>: the run's last batch.</summary>
    public static bool Keeps(LoopSpec loop, int versionBefore, int versionAfter, bool last) =>
        last || versionAfter == 0 || versionAfter / loop.CheckpointEvery > versionBefore / loop.CheckpointEvery;

    /// <summary>The recorded checkpoints that were kept, in version order (a completed run's last one among them).</summary>
    public static IReadOnlyList<CheckpointRef> Kept(RecordedRun run)
    {
        var loop = run.Started.Spec.Loop;
        var kept = new List<CheckpointRef>();
        var before = -1;
        foreach (var checkpoint in Distinct(run.Checkpoints))
        {
            if (before < 0 ? checkpoint.Version == 0 : Keeps(loop, before, checkpoint.Version, last: false))
                kept.Add(checkpoint);
            before = checkpoint.Version;
        }
        if (run.Completed && Distinct(run.Checkpoints).LastOrDefault() is { } final && kept.LastOrDefault() != final)
            kept.Add(final);
        return kept;
    }

    /// <summary>
    /// The hashes (weights and trainer states) <paramref name="run"/> needs stored for `replay`, `resume` and lineage: the
    /// reference, its kept checkpoints, and, while it is unfinished, its last checkpoint (what `resume` continues from).
    /// </summary>
    public static IEnumerable<string> Needed(RecordedRun run)
    {
        if (run.Initialized is { } initialized)
        {
            yield return initialized.Reference.Sha256;
            yield return initialized.Policy.Sha256;
        }
        var checkpoints = Kept(run).ToList();
        if (!run.Completed && run.Checkpoints.LastOrDefault() is { } last)
            checkpoints.Add(last);
        foreach (var checkpoint in checkpoints)
        {
            yield return checkpoint.Sha256;
            if (checkpoint.TrainerState is { } state)
                yield return state.Sha256;
        }
    }

    /// <summary>Whether the run may still be going: not completed, and no failure or stop recorded since it last
    /// (re)started. Such a run's transient copies are what its Sampler and Learner load next.</summary>
    public static bool MayBeLive(RecordedRun run) =>
        !run.Completed && run.Events.LastOrDefault(e => e is RunFailed or RunStopped or RunResumed) is not (RunFailed or RunStopped);

    private static IEnumerable<CheckpointRef> Distinct(IEnumerable<CheckpointRef> checkpoints) =>
        checkpoints.GroupBy(c => c.Version).Select(g => g.First()).OrderBy(c => c.Version);
}

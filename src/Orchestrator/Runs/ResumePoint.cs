using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>A batch recorded before a crash whose training was never recorded: trained first on resume, never dropped.</summary>
internal sealed record PendingBatch(int Iteration, Batch Batch);

/// <summary>
/// Where a stopped run stands, rebuilt from its event stream alone: the last published checkpoint (weights and
/// trainer state), the evaluations and updates so far, and every seeded draw replayed in order (prompts, the
/// offline dataset's epochs), so the continued run makes the same draws the uninterrupted one would have.
/// </summary>
internal static class ResumePoint
{
    public static (RunState Run, BatchSource Source, PendingBatch? Pending, bool EvaluationMissing) Rebuild(RecordedRun recorded, Algorithm1 algorithm)
    {
        var started = recorded.Started;
        var spec = started.Spec;
        if (recorded.Completed)
            throw new ArgumentException($"run {started.RunId} has already completed; nothing to resume");
        if (recorded.Initialized is null || recorded.Checkpoints.Count == 0)
            throw new ArgumentException($"run {started.RunId} stopped before its policy was initialized; start it again instead");

        var run = new RunState(started.RunId, spec) { Reference = recorded.Initialized.Reference };
        foreach (var checkpoint in recorded.Checkpoints)
            run.Policy = checkpoint;
        var policy = run.Policy!;
        run.Evaluations.AddRange(recorded.Evaluations);
        run.Updates.AddRange(recorded.Updates.OrderBy(u => u.Step));
        if (run.Updates.Count != policy.Version)
            throw new InvalidOperationException($"run {started.RunId}: {run.Updates.Count} updates recorded but the last checkpoint is version {policy.Version}");
        var produced = recorded.Events.OfType<RolloutsGenerated>().Where(g => g.Purpose != RolloutPurpose.Evaluation).ToList();
        run.SamplesDrawn = produced.Sum(g => g.Rollouts.Count);
        run.RewardQueries = recorded.Events.OfType<RolloutsScored>().Where(s => s.Purpose != RolloutPurpose.Evaluation).Sum(s => s.RewardQueries)
            + recorded.Evaluations.Sum(e => e.Samples);

        // Replay the seeded draws of every recorded iteration, in order.
        var loop = spec.Loop;
        BatchSource source;
        if (started.ReplayOf is { } original)
        {
            source = new RecordedBatches(recorded.ReplayedRun
                ?? throw new InvalidOperationException($"run {started.RunId} replays run {original}, which is not in the event store"));
        }
        else if (spec.Method.Data == DataSource.Offline)
        {
            if (spec.Task.Length is not { Dataset: not "" })   // a pairs file draws no prompt
                run.DrawPrompts(loop.DatasetPrompts);
            var dataset = produced.Single(g => g.Purpose == RolloutPurpose.Dataset);
            var rewards = recorded.Events.OfType<RolloutsScored>().Where(s => s.Purpose == RolloutPurpose.Dataset).SelectMany(s => s.Scores).ToDictionary(s => s.SampleId, s => s.Reward);
            var data = new OfflineDataset(dataset.Rollouts.Select(r => new TrainingSample { Rollout = r, Reward = rewards[r.SampleId] }).ToList(),
                loop.DatasetResponses, new Random(spec.Seed));
            foreach (var _ in recorded.Assembled)
                data.NextBatch(loop.B / loop.C);
            source = new DatasetBatches(data);
        }
        else
        {
            foreach (var _ in recorded.Assembled)
                run.DrawPrompts(loop.B / loop.C);
            source = new FreshBatches(algorithm);
        }

        var last = recorded.Assembled.LastOrDefault();
        PendingBatch? pending = last is not null && !recorded.Trained.ContainsKey(last.BatchId)
            ? new PendingBatch(last.Iteration, new Batch(last.BatchId, [], recorded.SamplesOf(last), 0, 0, Recorded: true))
            : null;

        // An evaluation that was due after the last trained batch (or at the start) but never recorded.
        var lastTrained = last is null ? null : recorded.Trained.GetValueOrDefault(last.BatchId)
            ?? (recorded.Assembled.Count > 1 ? recorded.Trained.GetValueOrDefault(recorded.Assembled[^2].BatchId) : null);
        var evaluatedNow = run.Evaluations.Count > 0 && run.Evaluations[^1].PolicyVersion == policy.Version;
        var due = lastTrained is null || Algorithm1.EvaluationDue(run, lastTrained.Steps, pending is null && recorded.Assembled.Count >= run.Iterations);
        return (run, source, pending, due && !evaluatedNow);
    }
}

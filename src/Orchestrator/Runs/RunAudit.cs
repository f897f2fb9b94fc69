using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// The invariants a run's event stream must satisfy whatever faults hit it: every consumed sample was produced
/// exactly once and belongs to the batch its update names, policy versions increase without gaps, each update and
/// each batch is applied once, every batch handed to the Learner was trained, nothing is recorded after the run
/// ended (a failure or a stop may be followed only by a resume), and the run completed. Returns the violations (none for a
/// sound run). The fault tests and the pipeline tests check every run they make with it.
/// </summary>
public static class RunAudit
{
    public static IReadOnlyList<string> Check(RecordedRun run, bool mustBeComplete = true)
    {
        var problems = new List<string>();
        var events = run.Events;

        // Samples: produced once (in this stream or, for a counterfactual replay, in its source), consumed only if produced.
        var produced = ProducedSamples(run);
        foreach (var twice in produced.Where(p => p.Value > 1))
            problems.Add($"sample {twice.Key} was produced {twice.Value} times");
        var updates = events.OfType<UpdateApplied>().ToList();
        foreach (var orphan in updates.SelectMany(u => u.SampleIds.Select(id => (u.Step, id))).Where(x => !produced.ContainsKey(x.id)).Take(5))
            problems.Add($"step {orphan.Step} consumed sample {orphan.id}, which no recorded batch produced");
        var batchSamples = events.OfType<TrainingBatchAssembled>().GroupBy(a => a.BatchId).ToDictionary(g => g.Key, g => g.First().SampleIds.ToHashSet());
        foreach (var u in updates)
        {
            if (!batchSamples.TryGetValue(u.BatchId, out var inBatch))
                problems.Add($"step {u.Step} trained on batch {u.BatchId}, which was never recorded as assembled");
            else if (u.SampleIds.Any(id => !inBatch.Contains(id)))
                problems.Add($"step {u.Step} consumed samples outside its batch {u.BatchId}");
        }

        // Updates: steps 1..N in order, versions chained, each (batch, pass, minibatch) once.
        for (var i = 0; i < updates.Count; i++)
        {
            var u = updates[i];
            if (u.Step != i + 1) { problems.Add($"update #{i + 1} is step {u.Step}: steps must run 1..N without gaps or repeats"); break; }
            if (u.VersionBefore != i || u.VersionAfter != i + 1) { problems.Add($"step {u.Step} goes from version {u.VersionBefore} to {u.VersionAfter}"); break; }
        }
        foreach (var repeat in updates.GroupBy(u => (u.BatchId, u.Pass, u.Minibatch)).Where(g => g.Count() > 1))
            problems.Add($"batch {repeat.Key.BatchId} pass {repeat.Key.Pass} minibatch {repeat.Key.Minibatch} was applied {repeat.Count()} times");

        // Checkpoints: versions strictly increase.
        var versions = events.OfType<CheckpointPublished>().Select(c => c.Checkpoint.Version).ToList();
        for (var i = 1; i < versions.Count; i++)
            if (versions[i] <= versions[i - 1]) { problems.Add($"checkpoint version {versions[i]} published after {versions[i - 1]}"); break; }

        // Batches: assembled once, trained once, none trained unassembled, none assembled and dropped.
        var assembled = events.OfType<TrainingBatchAssembled>().ToList();
        foreach (var repeat in assembled.GroupBy(a => a.BatchId).Where(g => g.Count() > 1))
            problems.Add($"batch {repeat.Key} was assembled {repeat.Count()} times");
        var trained = events.OfType<PolicyTrained>().ToList();
        foreach (var repeat in trained.GroupBy(t => t.BatchId).Where(g => g.Count() > 1))
            problems.Add($"batch {repeat.Key} was trained {repeat.Count()} times");
        var assembledIds = assembled.Select(a => a.BatchId).ToHashSet();
        foreach (var stray in trained.Where(t => !assembledIds.Contains(t.BatchId)))
            problems.Add($"batch {stray.BatchId} was trained but never recorded as assembled");
        var trainedIds = trained.Select(t => t.BatchId).ToHashSet();
        foreach (var dropped in assembled.Where(a => !trainedIds.Contains(a.BatchId)).Where(_ => mustBeComplete))
            problems.Add($"batch {dropped.BatchId} (iteration {dropped.Iteration}) was recorded but never trained");

        // Endings: nothing after RunCompleted; after RunFailed or RunStopped, only a RunResumed may come next.
        for (var i = 0; i < events.Count - 1; i++)
        {
            if (events[i] is RunCompleted) { problems.Add($"{events.Count - 1 - i} event(s) recorded after RunCompleted"); break; }
            if (events[i] is RunFailed or RunStopped && events[i + 1] is not RunResumed) { problems.Add($"{events[i + 1].GetType().Name} recorded after {events[i].GetType().Name} without a RunResumed"); break; }
        }
        if (mustBeComplete && !run.Completed)
            problems.Add("the run has no RunCompleted");
        return problems;
    }

    private static Dictionary<Guid, int> ProducedSamples(RecordedRun run)
    {
        var source = run.ReplayedRun ?? run;
        return source.Events.OfType<RolloutsGenerated>().Where(g => g.Purpose != RolloutPurpose.Evaluation)
            .SelectMany(g => g.Rollouts).GroupBy(r => r.SampleId).ToDictionary(g => g.Key, g => g.Count());
    }
}

using PrefTune.Messages;
using Xunit;
using Xunit.Sdk;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>
/// What a run's event stream must say however the run was disturbed: a fault may delay a run or fail it, but
/// must never make it learn from a sample twice produced, skip or repeat a gradient step, or leave a recorded
/// batch untrained in a run that says it completed. Stated once, for every fault test.
/// </summary>
public static class RunInvariants
{
    /// <summary>The run completed: <see cref="AssertConsistent"/>, every assembled batch trained, <paramref name="gradientSteps"/> steps, RunCompleted last.</summary>
    public static void AssertCompleted(IReadOnlyList<object> events, int gradientSteps)
    {
        AssertConsistent(events);
        if (events[^1] is RunFailed failed)
            throw new XunitException($"the run failed instead of completing: [{failed.Stage}] {failed.Reason}");
        Assert.True(events[^1] is RunCompleted, $"the run's stream ends with {events[^1].GetType().Name} (event {events.Count}): it recorded neither RunCompleted nor RunFailed");

        var trained = events.OfType<PolicyTrained>().GroupBy(t => t.BatchId).ToDictionary(g => g.Key, g => g.Count());
        var untrained = events.OfType<TrainingBatchAssembled>().Where(b => !trained.ContainsKey(b.BatchId)).Select(b => b.BatchId).ToList();
        Assert.True(untrained.Count == 0, $"{untrained.Count} assembled batch(es) never trained (no PolicyTrained), e.g. {untrained.FirstOrDefault()}");
        var twice = trained.Where(t => t.Value > 1).Select(t => t.Key).ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} batch(es) recorded as trained more than once, e.g. {twice.FirstOrDefault()}");

        var updates = events.OfType<UpdateApplied>().Count();
        Assert.True(updates == gradientSteps, $"{updates} UpdateApplied for a budget of {gradientSteps} gradient steps");
        Assert.Equal(gradientSteps, ((RunCompleted)events[^1]).GradientSteps);
    }

    /// <summary>The run failed, and said why: <see cref="AssertConsistent"/>, then RunFailed with a reason last.</summary>
    public static void AssertFailedWithReason(IReadOnlyList<object> events)
    {
        AssertConsistent(events);
        if (events[^1] is not RunFailed failed)
            throw new XunitException($"the run's stream ends with {events[^1].GetType().Name} (event {events.Count}): it recorded neither RunCompleted nor RunFailed");
        Assert.False(string.IsNullOrWhiteSpace(failed.Reason), "RunFailed records no reason");
    }

    /// <summary>
    /// Holds at every moment of any run, finished or not: it started; every sample an update consumed was produced
    /// exactly once (in exactly one RolloutsGenerated) and belongs to the batch the update names, which was recorded;
    /// UpdateApplied steps run 1..N without gaps or repeats and their versions chain from the initial policy;
    /// no (BatchId, Pass, Minibatch) is applied twice; nothing follows RunCompleted or RunFailed.
    /// </summary>
    public static void AssertConsistent(IReadOnlyList<object> events)
    {
        Assert.NotEmpty(events);
        Assert.IsType<RunStarted>(events[0]);
        var ends = events.Select((e, i) => (e, i)).Where(x => x.e is RunCompleted or RunFailed).ToList();
        Assert.True(ends.Count <= 1, $"the run ended {ends.Count} times ({string.Join(", ", ends.Select(x => x.e.GetType().Name))})");
        if (ends.Count == 1)
            Assert.True(ends[0].i == events.Count - 1, $"{ends[0].e.GetType().Name} is event {ends[0].i + 1} of {events.Count}: something was recorded after the run ended");

        var produced = events.OfType<RolloutsGenerated>().SelectMany(g => g.Rollouts).GroupBy(r => r.SampleId).ToDictionary(g => g.Key, g => g.Count());
        var batches = events.OfType<TrainingBatchAssembled>().GroupBy(b => b.BatchId).ToDictionary(g => g.Key, g => g.ToList());
        var assembledTwice = batches.Where(b => b.Value.Count > 1).Select(b => b.Key).ToList();
        Assert.True(assembledTwice.Count == 0, $"batch {assembledTwice.FirstOrDefault()} recorded as assembled {assembledTwice.Count} times");

        var updates = events.OfType<UpdateApplied>().ToList();
        foreach (var update in updates)
        {
            foreach (var id in update.SampleIds)
            {
                var times = produced.GetValueOrDefault(id);
                Assert.True(times == 1, $"step {update.Step} consumed sample {id}, which {(times == 0 ? "no RolloutsGenerated produced" : $"{times} RolloutsGenerated produced")}");
            }
            Assert.True(batches.TryGetValue(update.BatchId, out var batch), $"step {update.Step} trained on batch {update.BatchId}, which was never recorded as assembled");
            var outside = update.SampleIds.Except(batch![0].SampleIds).ToList();
            Assert.True(outside.Count == 0, $"step {update.Step} consumed {outside.Count} sample(s) outside its batch {update.BatchId}");
        }

        var steps = updates.Select(u => u.Step).ToList();
        if (!steps.SequenceEqual(Enumerable.Range(1, steps.Count)))
            throw new XunitException($"UpdateApplied steps are not 1..{steps.Count} in order: {Describe(steps)}");

        var initial = events.OfType<PolicyInitialized>().FirstOrDefault()?.Policy.Version ?? 0;
        var expectedBefore = initial;
        foreach (var update in updates)
        {
            if (update.VersionBefore != expectedBefore || update.VersionAfter != update.VersionBefore + 1)
                throw new XunitException($"step {update.Step} goes from version {update.VersionBefore} to {update.VersionAfter}; expected {expectedBefore} to {expectedBefore + 1}");
            expectedBefore = update.VersionAfter;
        }

        var repeated = updates.GroupBy(u => (u.BatchId, u.Pass, u.Minibatch)).Where(g => g.Count() > 1).ToList();
        if (repeated.Count > 0)
            throw new XunitException($"{repeated.Count} (batch, pass, minibatch) applied more than once, e.g. batch {repeated[0].Key.BatchId} " +
                $"pass {repeated[0].Key.Pass} minibatch {repeated[0].Key.Minibatch} at steps {string.Join(", ", repeated[0].Select(u => u.Step))}");
    }

    /// <summary>The steps around the first one out of place.</summary>
    private static string Describe(IReadOnlyList<int> steps)
    {
        var first = Enumerable.Range(0, steps.Count).FirstOrDefault(i => steps[i] != i + 1);
        var from = Math.Max(0, first - 3);
        return $"at position {first + 1}: ... {string.Join(", ", steps.Skip(from).Take(8))} ...";
    }
}

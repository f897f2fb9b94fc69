using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
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

        var problems = RunAudit.Check(RecordedRun.From(events), mustBeComplete: true);
        if (problems.Count > 0)
            throw new XunitException("the completed run's stream breaks its invariants:\n  " + string.Join("\n  ", problems));

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
    /// Holds at every moment of any run, finished or not: the product's <see cref="RunAudit"/> (every consumed
    /// sample produced once and inside its batch, steps 1..N, versions chained, nothing applied twice, nothing
    /// after the end), without requiring completion.
    /// </summary>
    public static void AssertConsistent(IReadOnlyList<object> events)
    {
        Assert.NotEmpty(events);
        Assert.IsType<RunStarted>(events[0]);
        var problems = RunAudit.Check(RecordedRun.From(events), mustBeComplete: false);
        if (problems.Count > 0)
            throw new XunitException("the run's stream breaks its invariants:\n  " + string.Join("\n  ", problems));
    }
}

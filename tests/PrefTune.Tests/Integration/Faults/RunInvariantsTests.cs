using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using Xunit;
using Xunit.Sdk;

namespace PrefTune.Tests.Integration.Faults;

/// <summary>The run audit (through the fault tests' assertions) catches each violation it claims to: a checker that
/// never fails proves nothing.</summary>
public sealed class When_a_run_stream_is_checked
{
    private static readonly Guid RunId = Guid.NewGuid();

    [Fact]
    public void A_well_formed_completed_run_passes() => RunInvariants.AssertCompleted(Stream(batches: 3), gradientSteps: 12);

    [Fact]
    public void A_sample_produced_twice_fails()
    {
        var events = Stream(batches: 2);
        var generated = events.OfType<RolloutsGenerated>().First();
        events.Insert(events.IndexOf(generated) + 1, generated with { BatchId = Guid.NewGuid() });
        Fails(events, "was produced 2 times");
    }

    [Fact]
    public void A_repeated_step_fails()
    {
        var events = Stream(batches: 2);
        var update = events.OfType<UpdateApplied>().Last();
        events.Insert(events.IndexOf(update) + 1, update);
        Fails(events, "steps must run 1..N");
    }

    [Fact]
    public void A_version_gap_fails()
    {
        var events = Stream(batches: 2);
        var update = events.OfType<UpdateApplied>().ElementAt(5);
        events[events.IndexOf(update)] = update with { VersionBefore = update.VersionBefore + 1, VersionAfter = update.VersionAfter + 1 };
        Fails(events, "goes from version");
    }

    [Fact]
    public void A_minibatch_applied_twice_fails()
    {
        var events = Stream(batches: 2);
        var updates = events.OfType<UpdateApplied>().ToList();
        events[events.IndexOf(updates[1])] = updates[1] with { Pass = updates[0].Pass, Minibatch = updates[0].Minibatch };
        Fails(events, "was applied 2 times");
    }

    [Fact]
    public void An_untrained_batch_fails_a_completed_run()
    {
        var events = Stream(batches: 2);
        var batch = events.OfType<TrainingBatchAssembled>().Last();
        events.Insert(events.Count - 1, batch with { BatchId = Guid.NewGuid() });
        Fails(events, "never trained");
    }

    [Fact]
    public void A_sample_outside_its_batch_fails()
    {
        var events = Stream(batches: 2);
        var updates = events.OfType<UpdateApplied>().ToList();
        events[events.IndexOf(updates[^1])] = updates[^1] with { SampleIds = updates[0].SampleIds };
        Fails(events, "outside its batch");
    }

    [Fact]
    public void Events_after_the_end_fail_but_a_resume_after_a_failure_does_not()
    {
        var events = Stream(batches: 2);
        events.Add(events.OfType<UpdateApplied>().Last());
        Assert.Contains(RunAudit.Check(RecordedRun.From(events), mustBeComplete: false), p => p.Contains("after RunCompleted"));

        var resumed = Stream(batches: 2);
        var end = resumed.Count - 1;
        resumed.Insert(end - 2, new RunFailed { RunId = RunId, Reason = "sampler: no answer", Stage = "sampler", FailedAt = DateTimeOffset.UtcNow });
        Assert.Contains(RunAudit.Check(RecordedRun.From(resumed), mustBeComplete: false), p => p.Contains("after RunFailed"));
        resumed.Insert(end - 1, new RunResumed { RunId = RunId, PolicyVersion = 4, NextIteration = 1, ResumedAt = DateTimeOffset.UtcNow });
        Assert.Empty(RunAudit.Check(RecordedRun.From(resumed)));
    }

    [Fact]
    public void A_run_without_an_end_is_neither_completed_nor_failed()
    {
        var events = Stream(batches: 2);
        events.RemoveAt(events.Count - 1);
        RunInvariants.AssertConsistent(events);
        Fails(events, "neither RunCompleted nor RunFailed");
        var failure = Assert.Throws<XunitException>(() => RunInvariants.AssertFailedWithReason(events));
        Assert.Contains("neither RunCompleted nor RunFailed", failure.Message);
        events.Add(new RunFailed { RunId = RunId, Reason = "learner: no answer", Stage = "learner", FailedAt = DateTimeOffset.UtcNow });
        RunInvariants.AssertFailedWithReason(events);
    }

    private static void Fails(List<object> events, string fragment)
    {
        var failure = Assert.ThrowsAny<XunitException>(() => RunInvariants.AssertCompleted(events, gradientSteps: 8));
        Assert.Contains(fragment, failure.Message);
    }

    /// <summary>A completed run of <paramref name="batches"/> batches of B = 4 samples, T = 2 passes of M = 2 (4 steps each).</summary>
    private static List<object> Stream(int batches)
    {
        var checkpoint = new CheckpointRef { Version = 0, Sha256 = "0", Uri = "pg://sha256/0", Bytes = 1 };
        var spec = new RunSpec
        {
            Experiment = "synthetic", Label = "reinforce (online)", Task = new TaskSpec { Kind = "bandit" },
            Method = new MethodSpec { Name = "reinforce" }, Loop = new LoopSpec { B = 4, C = 2, M = 2, T = 2, GradientSteps = batches * 4 },
        };
        List<object> events =
        [
            new RunStarted { RunId = RunId, Spec = spec, StartedAt = DateTimeOffset.UtcNow },
            new PolicyInitialized { RunId = RunId, Reference = checkpoint, Policy = checkpoint },
        ];
        var version = 0;
        for (var iteration = 0; iteration < batches; iteration++)
        {
            var batchId = Guid.NewGuid();
            var rollouts = Enumerable.Range(0, 4).Select(i => new Rollout
            {
                SampleId = Guid.NewGuid(), PromptId = "p", Group = i / 2, PromptTokens = [0], ResponseTokens = [i], TokenLogProbs = [-1f], PolicyVersion = version,
            }).ToList();
            events.Add(new RolloutsGenerated { RunId = RunId, BatchId = batchId, Purpose = RolloutPurpose.Training, Iteration = iteration, PolicyVersion = version, Rollouts = rollouts });
            events.Add(new TrainingBatchAssembled
            {
                RunId = RunId, BatchId = batchId, Iteration = iteration, Source = DataSource.Online, PolicyVersion = version, SampleIds = rollouts.Select(r => r.SampleId).ToList(),
            });
            var updates = new List<UpdateApplied>();
            for (var pass = 0; pass < 2; pass++)
                for (var minibatch = 0; minibatch < 2; minibatch++, version++)
                    updates.Add(new UpdateApplied
                    {
                        RunId = RunId, BatchId = batchId, Step = version + 1, Pass = pass, Minibatch = minibatch, VersionBefore = version, VersionAfter = version + 1,
                        SampleIds = rollouts.Skip(minibatch * 2).Take(2).Select(r => r.SampleId).ToList(), Loss = 0.5,
                    });
            events.AddRange(updates);
            events.Add(new PolicyTrained { RunId = RunId, BatchId = batchId, Steps = 4, Checkpoint = checkpoint with { Version = version }, Updates = updates });
        }
        events.Add(new RunCompleted { RunId = RunId, GradientSteps = version, PolicyVersion = version, CompletedAt = DateTimeOffset.UtcNow });
        return events;
    }
}

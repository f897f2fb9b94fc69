using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

/// <summary>A NaN or infinite loss fails the run with the step and batch recorded, and no checkpoint comes from it.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_loss_diverges(PostgresServer postgres)
{
    [Fact]
    public async Task The_run_fails_naming_the_step_and_batch_and_publishes_nothing_from_it()
    {
        // Adam moves every weight by about the learning rate: at 1e37 the logits overflow on the next step.
        var spec = TinyRuns.Bandit("reinforce", DataSource.Online, steps: 12);
        spec = spec with { Loop = spec.Loop with { LearningRate = 1e37 } };
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);

        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("failed", outcome.Status);
        var failed = Assert.Single(recorded.Events.OfType<RunFailed>());
        Assert.Equal("learner", failed.Stage);
        Assert.True(failed.Reason.Contains("non-finite loss"), failed.Reason);
        var unfinished = recorded.Assembled.Single(a => !recorded.Trained.ContainsKey(a.BatchId));
        Assert.Contains(unfinished.BatchId.ToString(), failed.Reason);
        // the step that diverged lies inside the failed batch (T * B / M steps after the last recorded one)
        var step = int.Parse(System.Text.RegularExpressions.Regex.Match(failed.Reason, @"at step (\d+)").Groups[1].Value);
        Assert.InRange(step, recorded.Updates.Count + 1, recorded.Updates.Count + spec.Loop.T * spec.Loop.B / spec.Loop.M);
        // Every published checkpoint comes from finished batches only; the failed batch produced none.
        Assert.Equal(recorded.Trained.Count + 1, recorded.Checkpoints.Count);
        Assert.Equal(recorded.Updates.Count, recorded.Checkpoints[^1].Version);
        Assert.Empty(RunAudit.Check(recorded, mustBeComplete: false));
    }
}

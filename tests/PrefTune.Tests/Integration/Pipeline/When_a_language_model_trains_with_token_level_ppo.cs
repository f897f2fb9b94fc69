using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Runs;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>
/// ppo-token on stories260K (the language-model policy's value head, PAPER.md Problem 2's PPO settings: clip 0.2,
/// vf_coef 0.1, adaptive KL from 0.2 towards 0.1) through the four services in one process, and replayed exactly.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_a_language_model_trains_with_token_level_ppo(PostgresServer postgres)
{
    [Fact]
    public async Task It_completes_records_its_metrics_per_step_and_replay_reproduces_every_hash()
    {
        // The shipped experiment lists dpo and reinforce only: its dpo run with the method swapped.
        var spec = LanguageModelRuns.Tiny("dpo") with
        {
            Method = new MethodSpec
            {
                Name = "ppo-token",
                Parameters = new Dictionary<string, double> { ["kl_coef"] = 0.2, ["kl_target"] = 0.1, ["cliprange"] = 0.2, ["vf_coef"] = 0.1 },
            },
        };
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        Assert.Equal([1, 2, 3], outcome.Updates.Select(u => u.Step));
        Assert.All(outcome.Updates, u =>
        {
            Assert.True(double.IsFinite(u.Loss), $"step {u.Step}: loss {u.Loss}");
            foreach (var name in new[] { "train/loss/policy_avg", "train/loss/value_avg", "train/objective/kl", "train/objective/kl_coef", "train/val/mean" })
                Assert.True(u.Metrics.ContainsKey(name) && double.IsFinite(u.Metrics[name]), $"step {u.Step}: {name} missing or not finite");
        });
        // The zero-initialised head predicts 0 at the first step; its value loss trains it from there.
        Assert.Equal(0, outcome.Updates[0].Metrics["train/val/mean"]);
        Assert.NotEqual(0, outcome.Updates[^1].Metrics["train/val/mean"]);
        // The adaptive controller moved the coefficient away from its initial 0.2.
        Assert.Equal(0.2, outcome.Updates[0].Metrics["train/objective/kl_coef"], 6);
        Assert.NotEqual(0.2, outcome.Updates[^1].Metrics["train/objective/kl_coef"]);

        var report = await session.ReplayExactlyAsync(recorded, CancellationToken.None);
        Assert.Empty(report.Caveats);
        Assert.Equal(4, report.Checkpoints.Count);
        Assert.All(report.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));
        // Version 0 is the loaded model (zero head, left out of the bytes); after a PPO step the head is in them.
        Assert.Equal(4, report.Checkpoints.Select(c => c.Recorded).Distinct().Count());
    }
}

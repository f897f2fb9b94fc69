using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Findings;

/// <summary>
/// Algorithm 1's on-policyness and reuse knobs on the categorical bandit, peak 70, REINFORCE, seeds 1-3,
/// 320 gradient steps at M = 10 (the cells of experiments/study-bandit.yaml's reinforce-B and reinforce-T
/// sweeps): sampling more often (B = 10 rather than 80) and reusing less (T = 1 rather than 8) give a
/// higher gold reward at the same number of gradient steps. The study's other sweeps (RWR's B, T = 2
/// against T = 1) did not show the paper's effect here and are reported, not asserted.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class On_policy_sampling_and_reuse(PostgresServer postgres)
{
    private static RunSpec Reinforce(int seed, int b, int t) => new()
    {
        Experiment = "findings",
        Label = $"reinforce B={b} T={t}",
        Seed = seed,
        Task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec { RewardCenter = 70 } },
        Method = new MethodSpec { Name = "reinforce", Data = DataSource.Online },
        Loop = new LoopSpec { B = b, C = 10, M = 10, T = t, GradientSteps = 320, LearningRate = 0.01, EvalEvery = 320, EvalSamples = 500 },
    };

    [Fact]
    public async Task More_on_policy_sampling_and_less_reuse_reach_a_higher_gold_reward_per_gradient_step()
    {
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = PostgresServer.NewSchema(), StageTimeoutSeconds = 60 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        async Task<double> MeanFinalAsync(int b, int t)
        {
            var finals = new List<double>();
            foreach (var seed in new[] { 1, 2, 3 })
                finals.Add((await session.RunAsync(Reinforce(seed, b, t), null, CancellationToken.None)).FinalGoldReward!.Value);
            return finals.Average();
        }

        var onPolicy = await MeanFinalAsync(b: 10, t: 1);
        var stale = await MeanFinalAsync(b: 80, t: 1);
        var reused = await MeanFinalAsync(b: 10, t: 8);

        Assert.True(onPolicy > stale + 0.05, $"B=10 {onPolicy:0.000}, B=80 {stale:0.000}");
        Assert.True(onPolicy > reused + 0.05, $"T=1 {onPolicy:0.000}, T=8 {reused:0.000}");
    }
}

using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Runs;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>The shipped language-model experiment (stories260K, Min Length), made small, through the four services.</summary>
public static class LanguageModelRuns
{
    /// <summary>experiments/lm-stories-length.yaml as a user runs it, its model path pointed at the fixtures this test
    /// process finds (they may live elsewhere than beside the clone).</summary>
    public static Experiment Shipped()
    {
        var file = Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "lm-stories-length.yaml");
        var text = File.ReadAllText(file).Replace("../../shared/models/stories260K/hf", Fixtures.StoriesHf);
        return ExperimentFile.Parse(text, file);
    }

    /// <summary>The shipped experiment's <paramref name="method"/> run, cut to 2 prompts x 4 responses a step and 48 new tokens.</summary>
    public static RunSpec Tiny(string method, int steps = 3, int seed = 1)
    {
        var spec = Shipped().Runs.First(r => r.Method.Name == method);
        return spec with
        {
            Seed = seed,
            Task = spec.Task with { Model = spec.Task.Model! with { MaxNewTokens = 48 } },
            Loop = spec.Loop with { B = 8, C = 4, M = 8, GradientSteps = steps, EvalEvery = steps, EvalSamples = 16, CheckpointEvery = 1 },
        };
    }
}

[Collection(ServersCollection.Name)]
public sealed class When_a_language_model_run_goes_through_the_pipeline(PostgresServer postgres, RabbitMqServer rabbit)
{
    private PrefTuneOptions Options => RunsUnderTest.Options(postgres);

    [Fact]
    public async Task Rollouts_are_text_that_ends_on_the_stop_token_or_at_the_cap_and_replay_reproduces_every_hash()
    {
        await using var session = await PipelineSession.StartAsync(Options, ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(LanguageModelRuns.Tiny("dpo"), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        var rollouts = recorded.Events.OfType<RolloutsGenerated>().SelectMany(g => g.Rollouts).ToList();
        Assert.Equal(3 * 8, rollouts.Count);
        Assert.All(rollouts, r =>
        {
            Assert.Equal(r.ResponseTokens.Length, r.TokenLogProbs.Length);    // the stop token is scored too
            if (r.Finish == FinishReason.Stop) Assert.Equal(1, r.ResponseTokens[^1]);
            else Assert.Equal((FinishReason?)FinishReason.Length, r.Finish);
            if (r.Finish == FinishReason.Length) Assert.Equal(48, r.ResponseTokens.Length);
        });
        var scores = recorded.Events.OfType<RolloutsScored>().SelectMany(s => s.Scores).ToDictionary(s => s.SampleId);
        Assert.All(rollouts, r => Assert.Equal(-r.ContentLength(), scores[r.SampleId].GoldReward));
        Assert.All(outcome.Evaluations, e => Assert.Equal(-e.MeanGoldReward, e.Metrics["eval/completions/mean_length"], 9));

        var report = await session.ReplayExactlyAsync(recorded, CancellationToken.None);
        Assert.Empty(report.Caveats);
        Assert.Equal(4, report.Checkpoints.Count);
        Assert.All(report.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));
    }

    /// <summary>The same spec run twice: the four services in this process, then as child processes over RabbitMQ (a data
    /// folder of their own for the logs, removed after).</summary>
    private async Task<(RunOutcome InProcess, RunOutcome OverBroker)> InProcessAndOverRabbitMqAsync(RunSpec spec)
    {
        var data = Directory.CreateTempSubdirectory("preftune-test-").FullName;
        try
        {
            RunOutcome inProcess, overBroker;
            await using (var session = await PipelineSession.StartAsync(Options, ServiceHosting.InProcess, CancellationToken.None))
                inProcess = await session.RunAsync(spec, null, CancellationToken.None);
            await using (var session = await PipelineSession.StartAsync(Options with { Broker = rabbit.AmqpUri, DataFolder = data },
                ServiceHosting.ChildProcesses, CancellationToken.None))
                overBroker = await session.RunAsync(spec, null, CancellationToken.None);
            return (inProcess, overBroker);
        }
        finally { Directory.Delete(data, recursive: true); }
    }

    [Fact]
    public async Task Over_RabbitMQ_it_gives_the_same_numbers_as_in_one_process()
    {
        var (inProcess, overBroker) = await InProcessAndOverRabbitMqAsync(LanguageModelRuns.Tiny("reinforce", steps: 2));

        Assert.Equal("completed", overBroker.Status);
        Assert.Equal(inProcess.Updates.Select(u => u.Loss), overBroker.Updates.Select(u => u.Loss));
        Assert.Equal(inProcess.Evaluations.Select(e => e.Metrics["eval/completions/mean_length"]),
            overBroker.Evaluations.Select(e => e.Metrics["eval/completions/mean_length"]));
    }

    [Fact]
    public async Task With_a_learned_reward_model_scored_in_another_process_it_gives_the_same_numbers()
    {
        // The Scorer child process loads the reward model from its path and scores every batch, as the in-process one does.
        var tiny = LanguageModelRuns.Tiny("dpo", steps: 2);
        var (inProcess, overBroker) = await InProcessAndOverRabbitMqAsync(
            tiny with { RewardModel = new RewardModelSpec { Path = Unit.Rewards.RewardModels.Random512.Value } });

        Assert.Equal("completed", overBroker.Status);
        Assert.All(inProcess.Evaluations, e => Assert.True(e.Metrics.ContainsKey("eval/proxy_reward")));
        Assert.Equal(inProcess.Updates.Select(u => u.Loss), overBroker.Updates.Select(u => u.Loss));
        Assert.Equal(inProcess.Evaluations.Select(e => e.Metrics["eval/proxy_reward"]), overBroker.Evaluations.Select(e => e.Metrics["eval/proxy_reward"]));
        Assert.Equal(inProcess.Evaluations.Select(e => e.MeanGoldReward), overBroker.Evaluations.Select(e => e.MeanGoldReward));
    }

    [Fact]
    public async Task A_resumed_run_reaches_the_weights_of_the_uninterrupted_one()
    {
        var spec = LanguageModelRuns.Tiny("dpo", steps: 4) with { Loop = LanguageModelRuns.Tiny("dpo", steps: 4).Loop with { CheckpointEvery = 2 } };
        var options = Options;
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var whole = await session.RunAsync(spec, null, CancellationToken.None);
        var stoppedId = await RunsUnderTest.InterruptAsync(session, spec, atStep: 2);
        var stopped = (await RecordedRun.LoadAsync(session.Store, stoppedId, CancellationToken.None))!;

        var resumed = await session.ResumeAsync(stopped, null, CancellationToken.None);
        var after = (await RecordedRun.LoadAsync(session.Store, stoppedId, CancellationToken.None))!;
        var uninterrupted = (await RecordedRun.LoadAsync(session.Store, whole.RunId, CancellationToken.None))!;

        Assert.Equal("completed", resumed.Status);
        Assert.Equal(uninterrupted.Checkpoints[^1].Sha256, after.Checkpoints[^1].Sha256);
    }

    [Fact]
    public async Task On_policy_dpo_shortens_the_responses_well_below_the_references()
    {
        var tiny = LanguageModelRuns.Tiny("dpo", steps: 8);
        var spec = tiny with { Loop = tiny.Loop with { B = 16, C = 8, M = 16, EvalEvery = 8, EvalSamples = 32 } };
        await using var session = await PipelineSession.StartAsync(Options, ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);

        var (reference, final) = (outcome.Evaluations[0].Metrics["eval/completions/mean_length"], outcome.Evaluations[^1].Metrics["eval/completions/mean_length"]);
        Assert.True(reference > 20, $"the reference's responses average {reference} tokens: the prompts leave it room to shorten");
        Assert.True(final < reference / 2, $"mean length {reference} -> {final} after 8 steps of on-policy DPO");
    }
}

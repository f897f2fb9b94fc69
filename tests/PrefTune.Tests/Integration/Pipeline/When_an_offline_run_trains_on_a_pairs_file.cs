using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Runs;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>
/// Offline DPO on stories260K from a pairs file written by hand (rows whose texts start with the shipped story endings):
/// the file is the run's D_pref, recorded like a sampled one, every training sample comes from it, and replay and resume
/// reproduce the run.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_an_offline_run_trains_on_a_pairs_file(PostgresServer postgres) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-pairs-run-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly double[] Scores = [-3, -11, -1, -7, -5, -9];

    /// <summary>3 pairs on the first two story endings, the scores distinct so that each one's place can be checked.</summary>
    private RunSpec Spec(int steps)
    {
        var prompts = File.ReadLines(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "prompts", "story-endings.jsonl"))
            .Take(2).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()!).ToList();
        var pairs = Path.Combine(_folder, "pairs.jsonl");
        PreferenceDataFiles.WriteJsonl(pairs,
        [
            new(prompts[0], prompts[0] + " The end.", prompts[0] + " They played all day and had lots of fun together.", Scores[0], Scores[1], 8, prompts[0]),
            new(prompts[1], prompts[1] + " Yes.", prompts[1] + " She smiled and went home.", Scores[2], Scores[3], 6, prompts[1]),
            new(prompts[0], prompts[0] + " Lily was happy.", prompts[0] + " Lily was happy and sang a song to her mom.", Scores[4], Scores[5], 4, prompts[0]),
        ]);
        File.Copy(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "prompts", "story-endings.jsonl"), Path.Combine(_folder, "prompts.jsonl"));
        var text = $$"""
            name: lm-pairs
            seeds: [1]
            task:
              kind: length
              length:
                goal: min
                prompts: prompts.jsonl
                dataset: pairs.jsonl
              model:
                path: {{Fixtures.StoriesHf}}
                stop_ids: "1"
                max_new_tokens: 48
            loop:
              B: 4
              C: 2
              M: 4
              gradient_steps: {{steps}}
              learning_rate: 0.0001
              eval_every: {{steps}}
              eval_samples: 16
              checkpoint_every: 1
            methods:
              - name: dpo
                data: offline
            """;
        return Assert.Single(ExperimentFile.Parse(text, Path.Combine(_folder, "experiment.yaml")).Runs);
    }

    [Fact]
    public async Task The_file_is_d_pref_every_sample_comes_from_it_and_replay_reproduces_every_hash()
    {
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(Spec(steps: 3), null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        var generated = recorded.Events.OfType<RolloutsGenerated>().Where(g => g.Purpose != RolloutPurpose.Evaluation).ToList();
        var dataset = Assert.Single(generated);   // nothing sampled for training
        Assert.Equal(RolloutPurpose.Dataset, dataset.Purpose);
        Assert.Equal(2 * 3, dataset.Rollouts.Count);
        var scored = Assert.Single(recorded.Events.OfType<RolloutsScored>(), s => s.Purpose == RolloutPurpose.Dataset);
        Assert.Equal(dataset.Rollouts.Select(r => r.SampleId), scored.Scores.Select(s => s.SampleId));
        Assert.Equal(Scores, scored.Scores.Select(s => s.Reward));
        Assert.All(dataset.Rollouts, r => Assert.Equal((FinishReason?)FinishReason.Stop, r.Finish));
        Assert.Equal(dataset.Rollouts.Select(r => (double)-r.ContentLength()), scored.Scores.Select(s => s.GoldReward));

        var ids = dataset.Rollouts.Select(r => r.SampleId).ToHashSet();
        Assert.Equal(3, recorded.Assembled.Count);
        Assert.All(recorded.Assembled, b => Assert.Equal(DataSource.Offline, b.Source));
        Assert.All(recorded.Assembled.SelectMany(b => b.SampleIds), id => Assert.Contains(id, ids));
        Assert.All(recorded.Assembled, b => Assert.Equal(4, b.SampleIds.Count));

        var report = await session.ReplayExactlyAsync(recorded, CancellationToken.None);
        Assert.Empty(report.Caveats);
        Assert.Equal(4, report.Checkpoints.Count);
        Assert.All(report.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));
    }

    [Fact]
    public async Task A_resumed_run_reaches_the_weights_of_the_uninterrupted_one()
    {
        var spec = Spec(steps: 4);
        await using var session = await PipelineSession.StartAsync(RunsUnderTest.Options(postgres), ServiceHosting.InProcess, CancellationToken.None);
        var whole = await session.RunAsync(spec, null, CancellationToken.None);
        var stoppedId = await RunsUnderTest.InterruptAsync(session, spec, atStep: 2);
        var stopped = (await RecordedRun.LoadAsync(session.Store, stoppedId, CancellationToken.None))!;

        var resumed = await session.ResumeAsync(stopped, null, CancellationToken.None);
        var after = (await RecordedRun.LoadAsync(session.Store, stoppedId, CancellationToken.None))!;
        var uninterrupted = (await RecordedRun.LoadAsync(session.Store, whole.RunId, CancellationToken.None))!;

        Assert.Equal("completed", resumed.Status);
        Assert.Equal(uninterrupted.Checkpoints.Select(c => c.Sha256), after.Checkpoints.Select(c => c.Sha256));
    }
}

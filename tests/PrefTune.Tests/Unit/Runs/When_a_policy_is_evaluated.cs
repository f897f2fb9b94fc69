using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Sampler;
using Xunit;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>
/// An evaluation is sampled and scored in one hop and only its aggregates come back (<see cref="PolicyEvaluation"/>);
/// the Scorer gets the rollouts without their log-probs (<see cref="ScoreRollouts.For"/>). The aggregates are checked
/// against numbers worked out by hand.
/// </summary>
public class When_a_policy_is_evaluated
{
    private static readonly JsonSerializerOptions Wire = MassTransit.Serialization.SystemTextJsonMessageSerializer.Options;
    private static readonly TaskSpec Task = new() { Kind = "bandit", Bandit = new BanditSpec() };

    // Two responses: log pi = -1 - 2 = -3 (stopped, 2 tokens + stop) and -0.5 (cut at the cap, 1 token);
    // log pi_ref = -4 and -1.5. Gold rewards 1 and 3, proxy rewards 0.25 and 0.75.
    private static RolloutsGenerated Generated() => new()
    {
        RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Purpose = RolloutPurpose.Evaluation, Iteration = -1, PolicyVersion = 4,
        Rollouts =
        [
            new Rollout
            {
                SampleId = Guid.NewGuid(), PromptId = "p0", Group = 0, PromptTokens = [1, 2], ResponseTokens = [5, 6, 2],
                TokenLogProbs = [-1f, -1.5f, -0.5f], PolicyVersion = 4, ReferenceLogProb = -4, Finish = FinishReason.Stop,
            },
            new Rollout
            {
                SampleId = Guid.NewGuid(), PromptId = "p1", Group = 1, PromptTokens = [1, 3], ResponseTokens = [7],
                TokenLogProbs = [-0.5f], PolicyVersion = 4, ReferenceLogProb = -1.5, Finish = FinishReason.Length,
            },
        ],
    };

    private static RolloutsScored Scored(RolloutsGenerated generated) => new()
    {
        RunId = generated.RunId, BatchId = generated.BatchId, Purpose = generated.Purpose, RewardQueries = 2,
        Scores =
        [
            new RolloutScore { SampleId = generated.Rollouts[0].SampleId, Reward = 0.25, GoldReward = 1 },
            new RolloutScore { SampleId = generated.Rollouts[1].SampleId, Reward = 0.75, GoldReward = 3 },
        ],
    };

    [Fact]
    public void The_aggregates_are_the_means_worked_out_by_hand()
    {
        var generated = Generated();
        var summary = PolicyEvaluation.Summarize(generated, Scored(generated), hasRewardModel: true);

        Assert.Equal(2, summary.Samples);
        Assert.Equal(2, summary.RewardQueries);
        Assert.Equal(4, summary.PolicyVersion);
        Assert.Equal(2.0, summary.MeanGoldReward, 12);
        Assert.Equal(1.0, summary.GoldRewardStd, 12);                       // population std of {1, 3}
        Assert.Equal(1.75, summary.Entropy, 12);                            // -mean(-3, -0.5)
        Assert.Equal(1.0, summary.Metrics["eval/objective/kl"], 12);        // mean(-3 - -4, -0.5 - -1.5)
        Assert.Equal(0.5, summary.Metrics["eval/proxy_reward"], 12);
        Assert.Equal(1.5, summary.Metrics["eval/completions/mean_length"], 12);   // 2 (stop token not counted) and 1
        Assert.Equal(0.5, summary.Metrics["eval/completions/clipped_ratio"], 12);
        Assert.Equal(2.0, summary.Metrics["eval/completions/mean_terminated_length"], 12);
        // the recorded order: the evaluation's own three first (the Orchestrator puts the run's totals after them)
        Assert.Equal(["eval/gold_reward", "eval/objective/entropy", "eval/objective/kl"], summary.Metrics.Keys.Take(3));
    }

    [Fact]
    public void Without_a_reward_model_there_is_no_proxy_reward_and_fixed_length_responses_have_no_completion_metrics()
    {
        var generated = Generated();
        generated = generated with { Rollouts = generated.Rollouts.Select(r => r with { Finish = null }).ToList() };
        var summary = PolicyEvaluation.Summarize(generated, Scored(generated), hasRewardModel: false);

        Assert.DoesNotContain("eval/proxy_reward", summary.Metrics.Keys);
        Assert.DoesNotContain(summary.Metrics.Keys, k => k.StartsWith("eval/completions/"));
        Assert.Equal(3, summary.Metrics.Count);
    }

    [Fact]
    public async Task The_scorer_gets_the_tokens_without_the_log_probs_and_the_answer_is_a_few_hundred_bytes()
    {
        var generated = Generated();
        ScoreRollouts? asked = null;
        var request = new EvaluatePolicy
        {
            Sampling = new SampleRollouts
            {
                RunId = generated.RunId, BatchId = generated.BatchId, Purpose = RolloutPurpose.Evaluation, Iteration = -1, Task = Task,
                Policy = new CheckpointRef { Version = 4, Sha256 = new string('a', 64), Uri = "memory:a", Bytes = 1 },
                Prompts = [], ResponsesPerPrompt = 1, Seed = 1, TorchThreads = 3,
            },
        };

        var summary = await PolicyEvaluation.EvaluateAsync(request,
            (_, _) => System.Threading.Tasks.Task.FromResult(generated),
            (score, _) => { asked = score; return System.Threading.Tasks.Task.FromResult(Scored(generated)); },
            CancellationToken.None);

        Assert.NotNull(asked);
        Assert.Equal(3, asked.TorchThreads);
        Assert.Equal(RolloutPurpose.Evaluation, asked.Purpose);
        Assert.Equal(generated.Rollouts.Select(r => r.ResponseTokens), asked.Rollouts.Select(r => r.ResponseTokens));
        Assert.Equal(generated.Rollouts.Select(r => r.Finish), asked.Rollouts.Select(r => r.Finish));
        Assert.All(asked.Rollouts, r => Assert.Empty(r.TokenLogProbs));
        Assert.All(asked.Rollouts, r => Assert.Null(r.ReferenceLogProb));
        // the entropy still comes from the sampler's log-probs, which never left it
        Assert.Equal(1.75, summary.Entropy, 12);
        Assert.InRange(JsonSerializer.SerializeToUtf8Bytes(summary, Wire).Length, 1, 600);
    }

    [Fact]
    public async Task A_scorer_that_answers_for_other_rollouts_fails_the_evaluation_naming_the_batch()
    {
        var generated = Generated();
        var request = new EvaluatePolicy
        {
            Sampling = new SampleRollouts
            {
                RunId = generated.RunId, BatchId = generated.BatchId, Purpose = RolloutPurpose.Evaluation, Iteration = -1, Task = Task,
                Policy = new CheckpointRef { Version = 4, Sha256 = new string('a', 64), Uri = "memory:a", Bytes = 1 },
                Prompts = [], ResponsesPerPrompt = 1, Seed = 1,
            },
        };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => PolicyEvaluation.EvaluateAsync(request,
            (_, _) => System.Threading.Tasks.Task.FromResult(generated),
            (_, _) => System.Threading.Tasks.Task.FromResult(Scored(generated) with { Scores = [] }),
            CancellationToken.None));
        Assert.Contains(generated.BatchId.ToString(), error.Message);
        Assert.Contains("0 scores for 2 rollouts", error.Message);
    }

    [Fact]
    public void A_language_model_batch_sent_to_the_scorer_is_less_than_half_its_packed_size_with_log_probs()
    {
        var random = new Random(5);
        var generated = Generated() with
        {
            Rollouts = Enumerable.Range(0, 16).Select(i => new Rollout
            {
                SampleId = Guid.NewGuid(), PromptId = $"p{i / 4}", Group = i / 4, PromptTokens = [1, 2, 3],
                ResponseTokens = Enumerable.Range(0, 100).Select(_ => random.Next(0, 512)).ToArray(),
                TokenLogProbs = Enumerable.Range(0, 100).Select(_ => -(float)random.NextDouble()).ToArray(), PolicyVersion = 1,
            }).ToList(),
        };
        var sampled = JsonSerializer.SerializeToUtf8Bytes(generated, Wire).Length;
        var toScore = JsonSerializer.SerializeToUtf8Bytes(ScoreRollouts.For(generated, Task, null, 1), Wire).Length;
        Assert.True(toScore * 2 < sampled, $"{toScore} bytes to score against {sampled} sampled");
    }
}

using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using Xunit;
using static PrefTune.Tests.Unit.Rewards.RewardModels;

namespace PrefTune.Tests.Unit.Rewards;

/// <summary>The reward model's own numbers: r_phi(x, y) is the classifier's score at the last content token, the same
/// padded in a batch as alone, and matches Hugging Face's scores for the fixture's inputs.</summary>
public sealed class When_a_reward_model_scores_rollouts : IDisposable
{
    private readonly RewardModelScorer _scorer = RewardModelScorer.Load(new RewardModelSpec { Path = TinyRm });
    private readonly LanguageModel _model = Fixtures.Load(TinyRm);

    public void Dispose()
    {
        _scorer.Dispose();
        _model.Dispose();
    }

    [Fact]
    public void Its_reward_is_the_classifiers_score_of_prompt_and_response_as_transformers_gives_it()
    {
        var cases = Fixtures.Expected(TinyRm)["cases"]!.AsArray();
        var ids = cases.Select(c => Fixtures.Ints(c!["input_ids"])).ToList();
        var hf = cases.Select(c => c!["score"]!.GetValue<double>()).ToList();
        // Split each input into a prompt and a response: the reward model reads them as one sequence.
        var rollouts = ids.Select(s => Rollout(s[..((s.Length + 1) / 2)], s[((s.Length + 1) / 2)..])).ToList();

        var rewards = _scorer.Score(rollouts, policyTokenizerFile: null);

        Assert.Equal(3, rewards.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            Assert.Equal(RewardModels.Direct(_model, ids[i]), rewards[i], 1e-4);
            Assert.Equal(hf[i], rewards[i], 1e-4);
        }
    }

    [Fact]
    public void A_left_padded_batch_scores_each_rollout_as_it_scores_alone()
    {
        var random = new Random(7);
        // 2 * MaxBatch + 3 rollouts of 1..40 tokens: several batches, each padded to its longest row.
        var rollouts = Enumerable.Range(0, 2 * RewardModelScorer.MaxBatch + 3).Select(_ =>
        {
            var prompt = Enumerable.Range(0, random.Next(1, 10)).Select(_ => random.Next(1, 96)).ToArray();
            var response = Enumerable.Range(0, random.Next(0, 30)).Select(_ => random.Next(1, 96)).ToArray();
            return Rollout(prompt, response);
        }).ToList();

        var batched = _scorer.Score(rollouts, null);
        var alone = rollouts.Select(r => _scorer.Score([r], null).Single()).ToList();

        Assert.Equal(alone, batched, (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.Equal(rollouts.Select(r => RewardModels.Direct(_model, [.. r.PromptTokens, .. r.ResponseTokens])), alone, (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.True(alone.Distinct().Count() > rollouts.Count / 2, "the scores differ between rollouts, so a mix-up would show");
    }

    [Fact]
    public void A_stopped_response_is_scored_on_its_content_without_the_stop_token()
    {
        int[] prompt = [14, 34, 28], content = [38, 89, 32];
        var stopped = Rollout(prompt, [.. content, 2], FinishReason.Stop);
        var truncated = Rollout(prompt, content, FinishReason.Length);

        var rewards = _scorer.Score([stopped, truncated], null);

        Assert.Equal(rewards[1], rewards[0], 1e-5);
        Assert.Equal([.. prompt, .. content], _scorer.Inputs([stopped], null).Single());
        // ... which is not what reading the stop token would give
        Assert.True(Math.Abs(RewardModels.Direct(_model, [.. prompt, .. content, 2]) - rewards[0]) > 1e-3);
    }

    [Fact]
    public void A_missing_model_or_tokenizer_names_the_field_and_the_file()
    {
        var nowhere = Path.Combine(Path.GetTempPath(), "preftune-no-such-reward-model");

        var path = Assert.Throws<ArgumentException>(() => RewardModelScorer.Load(new RewardModelSpec { Path = nowhere }));
        var tokenizer = Assert.Throws<ArgumentException>(() => RewardModelScorer.Load(new RewardModelSpec { Path = TinyRm, Tokenizer = nowhere + ".json" }));
        var fit = Assert.Throws<ArgumentException>(() => RewardModelScorer.Load(new RewardModelSpec { Path = TinyRm, Tokenizer = StoriesTokenizer }));

        Assert.StartsWith($"reward_model.path: {nowhere}: no such model directory", path.Message);
        Assert.StartsWith($"reward_model.tokenizer: {nowhere}.json: no such tokenizer file", tokenizer.Message);
        Assert.StartsWith($"reward_model.tokenizer: {StoriesTokenizer}: the tokenizer has 512 tokens but GPTNeoXForSequenceClassification embeds only 96", fit.Message);
    }

    [Fact]
    public void Scoring_leaves_no_live_tensors_behind()
    {
        var rollouts = Enumerable.Range(1, RewardModelScorer.MaxBatch + 2).Select(n => Rollout([1, 2], [.. Enumerable.Range(3, n)])).ToList();
        _scorer.Score(rollouts, null);   // warm-up
        TorchSharp.DisposeScopeManager.Statistics.Reset();
        _scorer.Score(rollouts, null);
        var afterOne = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 20; i++) _scorer.Score(rollouts, null);

        Assert.Equal(afterOne, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void A_bandit_response_without_a_stop_keeps_every_token()
    {
        var rollout = Rollout([5], [3, 9], finish: null);

        Assert.Equal([5, 3, 9], _scorer.Inputs([rollout], null).Single());
    }

    [Fact]
    public void An_id_outside_its_vocabulary_with_no_tokenizer_names_the_sample_and_the_field()
    {
        var rollout = Rollout([14, 34], [400, 12]);   // 400: a stories id, beyond the 96 this model embeds

        var error = Assert.Throws<ArgumentException>(() => _scorer.Score([rollout], StoriesTokenizer));

        Assert.StartsWith($"reward_model.tokenizer: sample {rollout.SampleId}: token id 400 is outside GPTNeoXForSequenceClassification's vocabulary of 96", error.Message);
    }

    [Fact]
    public void A_causal_lm_is_refused_as_a_reward_model_naming_the_field()
    {
        var error = Assert.Throws<ArgumentException>(() => RewardModelScorer.Load(new RewardModelSpec { Path = Fixtures.Tiny("tiny-gpt-neox") }));

        Assert.StartsWith("reward_model.path: ", error.Message);
        Assert.Contains("GPTNeoXForCausalLM is not a sequence classifier", error.Message);
    }
}

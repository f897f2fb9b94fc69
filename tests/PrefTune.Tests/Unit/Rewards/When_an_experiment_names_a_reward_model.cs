using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;
using static PrefTune.Tests.Unit.Rewards.RewardModels;

namespace PrefTune.Tests.Unit.Rewards;

/// <summary>The experiment file's reward_model block is checked when the file is read: a model that is not a sequence
/// classifier, a tokenizer that is missing or does not fit, each reported at its field.</summary>
public class When_an_experiment_names_a_reward_model
{
    private static string WithRewardModel(string block, string? task = null) =>
        (task is null ? ExperimentText.Minimal : ExperimentText.Minimal.Replace("task:\n  kind: bandit", task)) + "\nreward_model:\n" + block;

    /// <summary>A length task answered by stories260K (vocabulary 512), its prompts in a file the test writes.</summary>
    private static string LengthTask()
    {
        var prompts = Path.Combine(Path.GetTempPath(), $"preftune-rm-prompts-{Environment.ProcessId}.jsonl");
        File.WriteAllLines(prompts, ["{\"prompt\": \"Once upon a time\"}"]);
        return $"task:\n  kind: length\n  length:\n    prompts: {prompts}\n  model:\n    path: {Fixtures.StoriesHf}\n    max_new_tokens: 8";
    }

    [Fact]
    public void A_sound_reward_model_is_recorded_in_every_run()
    {
        var tokenizer = WordTokenizer("experiment", ["Once", "upon"]);

        var experiment = ExperimentText.Parse(WithRewardModel($"  path: {TinyRm}\n  tokenizer: {tokenizer}"));

        Assert.All(experiment.Runs, run => Assert.Equal((TinyRm, tokenizer, "cpu"), (run.RewardModel!.Path, run.RewardModel.Tokenizer, run.RewardModel.Device)));
    }

    [Fact]
    public void A_missing_path_is_reported_at_reward_model_path()
    {
        var missing = Path.Combine(Path.GetTempPath(), "preftune-no-such-reward-model");

        ExperimentText.ProblemAt(WithRewardModel($"  path: {missing}"), "reward_model.path", "no such model directory");
    }

    [Fact]
    public void A_causal_lm_is_reported_at_reward_model_path()
    {
        var problem = ExperimentText.ProblemAt(WithRewardModel($"  path: {Fixtures.Tiny("tiny-gpt-neox")}"), "reward_model.path",
            "GPTNeoXForCausalLM is a causal LM, not a sequence classifier");

        Assert.Contains("ForSequenceClassification", problem.Allowed);
    }

    [Fact]
    public void A_context_too_short_for_a_prompt_and_its_response_is_reported_at_reward_model_path()
    {
        // the reward model's context is 256, the policy's 512: a prompt of 5 tokens with 300 new ones fits the policy, not it
        var task = LengthTask().Replace("max_new_tokens: 8", "max_new_tokens: 300");
        ExperimentText.ProblemAt(WithRewardModel($"  path: {ShortContext.Value}", task), "reward_model.path",
            "its context of 256 tokens is shorter than the longest prompt with max_new_tokens = 300 (305 tokens)");
    }

    [Fact]
    public void A_classifier_with_two_labels_is_reported_at_reward_model_path()
    {
        ExperimentText.ProblemAt(WithRewardModel($"  path: {TwoLabels.Value}"), "reward_model.path", "a classifier with 2 labels (config.json)");
    }

    [Fact]
    public void A_score_head_that_does_not_match_its_config_names_the_tensor()
    {
        // config.json says 2 labels, the weights hold a 1-label head: the loader names the tensor and both shapes
        var directory = Directory.CreateTempSubdirectory("preftune-rm-head-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(Random512.Value))
                File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
            var config = Path.Combine(directory, "config.json");
            File.WriteAllText(config, File.ReadAllText(config).Replace("\"num_labels\": 1", "\"num_labels\": 2"));
            Assert.Contains("\"num_labels\": 2", File.ReadAllText(config));

            ExperimentText.ProblemAt(WithRewardModel($"  path: {directory}"), "reward_model.path", "score.weight");
        }
        finally { Directory.Delete(directory, recursive: true); }
    }

    [Fact]
    public void A_tokenizer_larger_than_its_vocabulary_is_reported_at_reward_model_tokenizer()
    {
        ExperimentText.ProblemAt(WithRewardModel($"  path: {TinyRm}\n  tokenizer: {StoriesTokenizer}"), "reward_model.tokenizer",
            "the tokenizer has 512 tokens but GPTNeoXForSequenceClassification embeds only 96");
    }

    [Fact]
    public void A_missing_tokenizer_file_is_reported_at_reward_model_tokenizer()
    {
        var missing = Path.Combine(Path.GetTempPath(), "preftune-no-such-tokenizer.json");

        ExperimentText.ProblemAt(WithRewardModel($"  path: {TinyRm}\n  tokenizer: {missing}"), "reward_model.tokenizer", "no such tokenizer file");
    }

    [Fact]
    public void No_tokenizer_and_a_vocabulary_smaller_than_the_policys_is_reported_at_reward_model_tokenizer()
    {
        ExperimentText.ProblemAt(WithRewardModel($"  path: {TinyRm}", LengthTask()), "reward_model.tokenizer",
            "has no tokenizer.json, so it would read the policy's ids as they are, but its vocabulary of 96 does not cover the policy's 512");
    }

    [Fact]
    public void No_tokenizer_and_a_vocabulary_that_covers_the_policys_is_accepted()
    {
        var experiment = ExperimentText.Parse(WithRewardModel($"  path: {Random512.Value}", LengthTask()));

        Assert.All(experiment.Runs, run => Assert.Equal(Random512.Value, run.RewardModel!.Path));
    }

    [Fact]
    public void An_unknown_device_is_reported_at_reward_model_device()
    {
        ExperimentText.ProblemAt(WithRewardModel($"  path: {TinyRm}\n  device: tpu"), "reward_model.device", "tpu");
    }
}

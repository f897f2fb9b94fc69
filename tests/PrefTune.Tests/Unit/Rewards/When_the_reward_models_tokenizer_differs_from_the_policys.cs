using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using Xunit;
using static PrefTune.Tests.Unit.Rewards.RewardModels;

namespace PrefTune.Tests.Unit.Rewards;

/// <summary>Which ids the reward model reads: the policy's text re-encoded when its tokenizer is another one, the
/// policy's ids as they are when it is the same file.</summary>
public sealed class When_the_reward_models_tokenizer_differs_from_the_policys
{
    private static readonly string[] Words = ["Once", "upon", "a", "time", "there", "was", "cat", "."];

    [Fact]
    public void It_reads_the_policys_text_encoded_with_its_own_tokenizer()
    {
        using var stories = TextTokenizers.Load(StoriesTokenizer);
        var ids = stories.Encode("Once upon a time there was a cat.");   // BOS first, then stories pieces (ids up to 511)
        var rollout = Rollout(ids[..5], [.. ids[5..], 2], FinishReason.Stop);
        var spec = new RewardModelSpec { Path = TinyRm, Tokenizer = WordTokenizer("words", Words) };
        using var scorer = RewardModelScorer.Load(spec);
        using var model = Fixtures.Load(TinyRm);

        var fed = scorer.Inputs([rollout], StoriesTokenizer).Single();
        var reward = scorer.Score([rollout], StoriesTokenizer).Single();

        // the word tokenizer's ids of the decoded text: Once upon a time there was a cat .
        Assert.Equal([1, 2, 3, 4, 5, 6, 3, 7, 8], fed);
        Assert.Contains(ids, id => id >= 96);   // read as they are, these ids would not fit the reward model
        Assert.Equal(RewardModels.Direct(model, fed), reward, 1e-5);
    }

    [Fact]
    public void The_same_tokenizer_file_under_another_name_reads_the_ids_as_they_are()
    {
        // Byte tokens (<0x61>.. = ids 100..) that re-encoding would merge into longer pieces: only the ids as they are give these back.
        int[] prompt = [1, 100, 101, 102], response = [103, 104];
        using var stories = TextTokenizers.Load(StoriesTokenizer);
        Assert.NotEqual([.. prompt, .. response], stories.Encode(stories.Decode([.. prompt, .. response])));
        using var scorer = RewardModelScorer.Load(new RewardModelSpec { Path = Random512.Value, Tokenizer = StoriesTokenizerCopy.Value });

        var fed = scorer.Inputs([Rollout(prompt, response)], StoriesTokenizer).Single();

        Assert.Equal([.. prompt, .. response], fed);
    }

    [Fact]
    public void A_reward_model_without_a_tokenizer_reads_ids_its_vocabulary_covers_as_they_are()
    {
        using var stories = TextTokenizers.Load(StoriesTokenizer);
        var ids = stories.Encode("Once upon a time there was a cat.");
        var rollout = Rollout(ids[..5], ids[5..]);

        using var scorer = RewardModelScorer.Load(new RewardModelSpec { Path = Random512.Value });

        var fed = scorer.Inputs([rollout], StoriesTokenizer).Single();

        Assert.Equal(ids, fed);
    }
}

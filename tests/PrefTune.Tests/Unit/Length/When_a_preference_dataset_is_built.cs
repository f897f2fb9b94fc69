using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Length;

/// <summary>The builder on stories260K: 2 prompts x 4 responses, every pair with a gold gap.</summary>
public sealed class When_a_preference_dataset_is_built
{
    private static readonly PreferenceDatasetSettings FourEach = new() { Responses = 4, Seed = 7 };

    [Fact]
    public void Should_put_the_better_response_first_with_its_score_gap()
    {
        var built = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach);
        Assert.Equal(2, built.PromptCount);
        Assert.Equal(8, built.Lengths.Count);
        Assert.NotEmpty(built.Rows);
        Assert.True(built.Rows.Count <= 2 * 6, $"{built.Rows.Count} pairs: at most C(C-1)/2 = 6 per prompt");
        using var tokenizer = TextTokenizers.Load(Path.Combine(Fixtures.StoriesHf, "tokenizer.json"));
        var spec = LengthSpecs.Stories();
        var prompts = LengthTask.ReadPrompts(spec.Length!.Prompts, spec.Model!).Select(p => tokenizer.Decode(p.Tokens)).ToList();
        foreach (var row in built.Rows)
        {
            Assert.True(row.YWScore > row.YLScore, $"{row.YWScore} vs {row.YLScore}: ties are dropped by default");
            Assert.Equal(row.YWScore - row.YLScore, row.ScoreDiff);
            Assert.Contains(row.Prompt, prompts);
            // y_w and y_l hold prompt + response text; min's score is minus the response's tokens
            Assert.StartsWith(row.Prompt, row.YW, StringComparison.Ordinal);
            Assert.StartsWith(row.Prompt, row.YL, StringComparison.Ordinal);
            Assert.StartsWith(row.Prompt, row.YRef, StringComparison.Ordinal);
            Assert.True(row.YWScore <= 0 && row.YLScore >= -48);
        }
        // the scores are lengths the samples had
        Assert.All(built.Rows, r => Assert.Contains(-(int)r.YLScore, built.Lengths));
    }

    [Fact]
    public void Should_give_the_same_rows_for_the_same_seed_and_others_for_another()
    {
        var first = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach);
        var again = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach);
        Assert.Equal(first.Rows, again.Rows);
        Assert.Equal(first.Lengths, again.Lengths);
        var other = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach with { Seed = 8 });
        Assert.NotEqual(first.Lengths, other.Lengths);
    }

    [Fact]
    public void Should_keep_ties_when_asked()
    {
        var kept = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach with { KeepTies = true });
        Assert.Equal(2 * 6, kept.Rows.Count);   // every pair of every prompt
        Assert.All(kept.Rows, r => Assert.True(r.ScoreDiff >= 0));
    }

    [Fact]
    public void Should_compute_and_record_the_mode_when_none_is_given()
    {
        var built = PreferenceDataset.Build(LengthSpecs.Stories(new LengthSpec { Goal = "mode" }), FourEach);
        Assert.Equal(PreferenceDataset.ModeOf(built.Lengths), built.ModeLength);
        Assert.All(built.Rows, r => Assert.True(r.YWScore <= 0 && r.YWScore > r.YLScore));
        var given = PreferenceDataset.Build(LengthSpecs.Stories(new LengthSpec { Goal = "mode", ModeLength = 3 }), FourEach);
        Assert.Equal(3, given.ModeLength);
    }

    [Fact]
    public void Should_cut_skews_completions_short()
    {
        var full = PreferenceDataset.Build(LengthSpecs.Stories(), FourEach);
        var skew = PreferenceDataset.Build(LengthSpecs.Stories(new LengthSpec { Goal = "skew", SkewTruncate = 5 }), FourEach);
        Assert.All(skew.Lengths, l => Assert.InRange(l, 0, 5));
        Assert.Equal(full.Lengths.Select(l => Math.Min(l, 5)), skew.Lengths);   // the same samples, cut
        Assert.All(skew.Rows, r => Assert.InRange(r.YLScore, -5, 0));
    }

    [Fact]
    public void Should_bin_every_length_in_the_histogram()
    {
        var histogram = LengthHistogram.Of([0, 3, 15, 16, 40]);
        Assert.Equal(3, histogram.BinWidth);   // ceil(41 / 16)
        Assert.Equal(5, histogram.Counts.Sum());
        Assert.Equal(2, histogram.Counts[0] + histogram.Counts[1]);
        Assert.Equal(histogram.Counts.Count, histogram.Lines().Count());
    }
}

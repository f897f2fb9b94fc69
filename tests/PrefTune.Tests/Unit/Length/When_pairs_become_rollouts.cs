using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Length;

/// <summary>A pairs file's rows as D_pref: row i is prompt group i, y_w then y_l, their ids after the prompt's, stopped
/// (the stop id appended) unless they reach max_new_tokens, rewarded with the file's scores, with ids from the batch.</summary>
public sealed class When_pairs_become_rollouts
{
    private const string Prompt = "Tom had a red ball.";
    private static readonly Guid Batch = new("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    private static ITextTokenizer Stories() => TextTokenizers.Load(Path.Combine(Fixtures.StoriesHf, "tokenizer.json"));

    [Fact]
    public void Should_strip_the_prompt_append_the_stop_id_and_carry_the_scores()
    {
        using var tokenizer = Stories();
        var rows = new[] { new PreferenceRow(Prompt, Prompt + " It was red.", Prompt + " He played with it all day long.", -4, -9, 5, Prompt) };
        var samples = PreferenceRollouts.FromRows(rows, tokenizer, stopId: 1, maxNewTokens: 48, maxPositions: 512, Batch, "pairs.jsonl");

        Assert.Equal(2, samples.Count);
        var prompt = tokenizer.Encode(Prompt);
        var (w, l) = (samples[0].Rollout, samples[1].Rollout);
        Assert.Equal(prompt, w.PromptTokens);
        Assert.Equal(prompt, l.PromptTokens);
        // the response ids are the whole text's after the prompt's, then the stop id
        Assert.Equal([.. tokenizer.Encode(rows[0].YW)[prompt.Length..], 1], w.ResponseTokens);
        Assert.Equal([.. tokenizer.Encode(rows[0].YL)[prompt.Length..], 1], l.ResponseTokens);
        Assert.Equal(" It was red.", tokenizer.Decode([.. w.PromptTokens, .. w.ResponseTokens])[Prompt.Length..]);
        Assert.All(samples, s => Assert.Equal((FinishReason?)FinishReason.Stop, s.Rollout.Finish));
        Assert.All(samples, s => Assert.Equal(s.Rollout.ResponseTokens.Length, s.Rollout.TokenLogProbs.Length));
        Assert.Equal([-4.0, -9.0], samples.Select(s => s.Reward));
        Assert.All(samples, s => Assert.Equal(0, s.Rollout.Group));
        Assert.Equal([SampleIds.Of(Batch, 0), SampleIds.Of(Batch, 1)], samples.Select(s => s.Rollout.SampleId));
    }

    [Fact]
    public void Should_give_the_same_ids_for_the_same_batch_and_number_the_groups_by_row()
    {
        using var tokenizer = Stories();
        var rows = new[]
        {
            new PreferenceRow(Prompt, Prompt + " Yes.", Prompt + " No, it was blue.", -2, -6, 4, Prompt),
            new PreferenceRow("Lily was sad.", "Lily was sad. Then she smiled.", "Lily was sad. She cried and cried all night.", -4, -8, 4, "Lily was sad."),
        };
        var first = PreferenceRollouts.FromRows(rows, tokenizer, 1, 48, 512, Batch, "pairs.jsonl");
        var again = PreferenceRollouts.FromRows(rows, tokenizer, 1, 48, 512, Batch, "pairs.jsonl");
        var other = PreferenceRollouts.FromRows(rows, tokenizer, 1, 48, 512, Guid.NewGuid(), "pairs.jsonl");

        Assert.Equal(first.Select(s => s.Rollout.SampleId), again.Select(s => s.Rollout.SampleId));
        Assert.Equal(Enumerable.Range(0, 4).Select(i => SampleIds.Of(Batch, i)), first.Select(s => s.Rollout.SampleId));
        Assert.Empty(first.Select(s => s.Rollout.SampleId).Intersect(other.Select(s => s.Rollout.SampleId)));
        Assert.Equal([0, 0, 1, 1], first.Select(s => s.Rollout.Group));
        Assert.Equal(4, first.Select(s => s.Rollout.SampleId).Distinct().Count());
    }

    [Fact]
    public void Should_take_a_response_of_max_new_tokens_or_without_a_stop_id_as_truncated()
    {
        using var tokenizer = Stories();
        var y = Prompt + " He played with it all day long.";
        var length = tokenizer.Encode(y).Length - tokenizer.Encode(Prompt).Length;
        var rows = new[] { new PreferenceRow(Prompt, y, y, -length, -length, 0, Prompt) };

        var atCap = PreferenceRollouts.FromRows(rows, tokenizer, 1, maxNewTokens: length, 512, Batch, "pairs.jsonl");
        Assert.All(atCap, s => Assert.Equal((FinishReason?)FinishReason.Length, s.Rollout.Finish));
        Assert.All(atCap, s => Assert.Equal(length, s.Rollout.ResponseTokens.Length));
        Assert.All(atCap, s => Assert.Equal(length, s.Rollout.ContentLength()));

        var noStop = PreferenceRollouts.FromRows(rows, tokenizer, stopId: null, 48, 512, Batch, "pairs.jsonl");
        Assert.All(noStop, s => Assert.Equal((FinishReason?)FinishReason.Length, s.Rollout.Finish));

        var error = Assert.Throws<ArgumentException>(() => PreferenceRollouts.FromRows(rows, tokenizer, 1, maxNewTokens: length - 1, 512, Batch, "pairs.jsonl"));
        Assert.Contains("pairs.jsonl, row 1, column y_w", error.Message, StringComparison.Ordinal);
        Assert.Contains("max_new_tokens", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Should_encode_the_response_alone_when_the_tokenizer_merges_across_the_prompt()
    {
        using var tokenizer = new MergingTokenizer();
        var rows = new[] { new PreferenceRow("one", "one, two", "one; three", -1, -2, 1, "one") };
        var samples = PreferenceRollouts.FromRows(rows, tokenizer, stopId: 2, 48, 512, Batch, "pairs.jsonl");
        Assert.Equal([1, 'o', 'n', 'e'], samples[0].Rollout.PromptTokens);
        Assert.Equal([',', ' ', 't', 'w', 'o', 2], samples[0].Rollout.ResponseTokens);   // BOS of the separate encoding dropped
        Assert.Equal([';', ' ', 't', 'h', 'r', 'e', 'e', 2], samples[1].Rollout.ResponseTokens);   // a prefix: stripped
    }

    [Fact]
    public void Should_name_the_row_and_column_of_a_response_that_does_not_start_with_its_prompt()
    {
        using var tokenizer = Stories();
        var rows = new[]
        {
            new PreferenceRow(Prompt, Prompt + " Yes.", Prompt + " No.", -1, -2, 1, Prompt),
            new PreferenceRow(Prompt, Prompt + " Yes.", "Something else entirely.", -1, -3, 2, Prompt),
        };
        var error = Assert.Throws<ArgumentException>(() => PreferenceRollouts.FromRows(rows, tokenizer, 1, 48, 512, Batch, "pairs.jsonl"));
        Assert.StartsWith("pairs.jsonl, row 2, column y_l: does not start with the row's prompt", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Characters as ids after BOS = 1, except "e," which merges into one token 999: y = "one, two" does not
    /// begin with encode("one").</summary>
    private sealed class MergingTokenizer : ITextTokenizer
    {
        public int VocabSize => 1000;
        public int? BosId => 1;
        public int? EosId => 2;
        public int[] Encode(string text)
        {
            var ids = new List<int> { 1 };
            for (var i = 0; i < text.Length; i++)
                if (text[i] == 'e' && i + 1 < text.Length && text[i + 1] == ',') { ids.Add(999); i++; }
                else ids.Add(text[i]);
            return [.. ids];
        }
        public string Decode(IReadOnlyList<int> ids) => string.Concat(ids.Where(i => i > 2).Select(i => i == 999 ? "e," : ((char)i).ToString()));
        public void Dispose() { }
    }
}

using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// The stories260K tokenizer in both forms: tokenizer.json through Hugging Face's Rust tokenizers, and tok512.bin
/// through PrefTune's port of run.c's encode. Independent implementations: equal ids are the check.
/// </summary>
public class When_text_is_tokenized
{
    public static TheoryData<string> Texts => new()
    {
        "Once upon a time",
        "",
        "a",
        " leading space",
        "trailing space ",
        "runs   of    spaces",
        "two\nlines\n\nand a blank one",
        "tab\there",
        "café, naïve, Ünïcödé",
        "日本語のテキスト and 中文",
        "emoji 🙂🚀 done",
        "Lily said, \"Let's play!\" 123 + 4.5 = 127.5?",
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Both_tokenizers_give_the_same_ids_and_decode_back(string text)
    {
        using var hf = TextTokenizers.Load(Fixtures.StoriesHf);
        using var bin = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        var binIds = bin.Encode(text);
        Assert.Equal(hf.Encode(text), binIds);
        Assert.Equal(1, binIds[0]);
        Assert.Equal(text, bin.Decode(binIds));
        Assert.Equal(text, hf.Decode(hf.Encode(text)));
    }

    [Fact]
    public void Literal_special_token_text_is_the_one_known_difference()
    {
        // README: HF-style tokenizers read the text "<s>" as the special token, llama2.c as plain characters.
        using var hf = TextTokenizers.Load(Fixtures.StoriesHf);
        using var bin = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        Assert.Equal(2, hf.Encode("<s> story").Count(id => id == 1));
        Assert.Equal(1, bin.Encode("<s> story").Count(id => id == 1));
        Assert.Equal("<s> story", bin.Decode(bin.Encode("<s> story")));
    }

    [Fact]
    public void The_readme_case_and_special_tokens()
    {
        using var hf = TextTokenizers.Load(Fixtures.StoriesHf);
        using var bin = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        Assert.Equal([1, 403, 407, 261, 378], bin.Encode("Once upon a time"));
        Assert.Equal([1, 410, 13, 233, 154, 168], bin.Encode("\n日"));
        foreach (var t in new[] { hf, bin })
        {
            Assert.Equal(512, t.VocabSize);
            Assert.Equal(1, t.BosId);
            Assert.Equal(2, t.EosId);
        }
    }
}

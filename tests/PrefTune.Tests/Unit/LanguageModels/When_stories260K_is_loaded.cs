using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>stories260K, a real pretrained Llama, from both its formats against llama2.c's own run.c outputs (expected.json).</summary>
public class When_stories260K_is_loaded(ITestOutputHelper output)
{
    public static TheoryData<string> Formats => new() { "hf", "llama2c" };

    private static string PathOf(string format) => format == "hf" ? Fixtures.StoriesHf : Fixtures.StoriesBin;

    [Theory]
    [MemberData(nameof(Formats))]
    public void Greedy_decoding_reproduces_run_c(string format)
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        using var model = Fixtures.Load(PathOf(format));
        var prompt = Fixtures.Ints(expected["prompt_ids"]);
        var generated = TextGeneration.Generate(model, [prompt], new SamplingSettings { MaxNewTokens = 60, Temperature = 0, StopIds = [Llama2cCheckpoint.StopId] })[0];
        Assert.Equal(Fixtures.Ints(expected["greedy_ids"]), generated.Ids);
        Assert.Equal(FinishReason.Length, generated.Finish);   // run.c's golden case never reaches BOS

        // The top-5 logits at the first three generated positions.
        var sequence = prompt.Concat(generated.Ids).ToArray();
        var logits = Fixtures.Logits(model, sequence);
        foreach (var at in expected["top5_logits"]!.AsArray())
        {
            var row = logits[at!["position"]!.GetValue<int>()];
            var top5 = at["top5"]!.AsArray();
            Assert.Equal(top5.Select(e => e!["id"]!.GetValue<int>()), row.Select((v, id) => (v, id)).OrderByDescending(x => x.v).Take(5).Select(x => x.id));
            output.WriteLine($"{format} position {at["position"]}: max |top-5 logit diff| {top5.Max(e => Math.Abs(row[e!["id"]!.GetValue<int>()] - e["logit"]!.GetValue<double>())):g3}");
            foreach (var e in top5)
                Assert.True(Math.Abs(row[e!["id"]!.GetValue<int>()] - e["logit"]!.GetValue<double>()) < 1e-4, $"{format}: logit of {e["id"]} at {at["position"]}");
        }
    }

    [Fact]
    public void Both_formats_give_the_same_logits_at_every_position()
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        var sequence = Fixtures.Ints(expected["prompt_ids"]).Concat(Fixtures.Ints(expected["greedy_ids"])).Take(40).ToArray();
        using var hf = Fixtures.Load(Fixtures.StoriesHf);
        using var llama2c = Fixtures.Load(Fixtures.StoriesBin);
        Assert.Equal(40, sequence.Length);
        var diff = Fixtures.MaxDiff(Fixtures.Logits(hf, sequence), Fixtures.Logits(llama2c, sequence));
        output.WriteLine($"max |logit diff| between the formats over 40 positions: {diff:g3}");
        Assert.True(diff < 1e-4, $"max |logit diff| between the formats {diff:g3}");
        Assert.True(hf.Config.TieWordEmbeddings && llama2c.Config.TieWordEmbeddings);
    }
}

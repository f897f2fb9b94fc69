using Xunit;
using Xunit.Abstractions;
using PrefTune.Training.LanguageModels;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>The tiny random models against the outputs of Hugging Face transformers' own modeling code (expected.json).</summary>
public class When_fixture_models_are_run(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> CausalModels => new() { "tiny-gpt-neox", "tiny-gpt-neox-seq", "tiny-llama" };

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Logits_match_transformers_at_every_position(string name)
    {
        var folder = Fixtures.Tiny(name);
        var expected = Fixtures.Expected(folder);
        using var model = Fixtures.Load(folder);
        foreach (var c in expected["cases"]!.AsArray())
        {
            var diff = Fixtures.MaxDiff(Fixtures.Logits(model, Fixtures.Ints(c!["input_ids"])), Fixtures.Rows(c["logits"]));
            output.WriteLine($"{name} {c["name"]}: max |logit diff| {diff:g3}");
            Assert.True(diff < Tolerance, $"{name} {c["name"]}: max |logit diff| {diff:g3}");
        }
        var greedy = expected["greedy"]!;
        var full = Fixtures.MaxDiff(Fixtures.Logits(model, Fixtures.Ints(greedy["sequence"])), Fixtures.Rows(greedy["logits_of_full_sequence"]));
        output.WriteLine($"{name} 17-token sequence: max |logit diff| {full:g3}");
        Assert.True(full < Tolerance, $"{name} 17-token sequence: max |logit diff| {full:g3}");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Greedy_continuations_are_transformers_tokens(string name)
    {
        var folder = Fixtures.Tiny(name);
        var greedy = Fixtures.Expected(folder)["greedy"]!;
        using var model = Fixtures.Load(folder);
        var prompt = Fixtures.Ints(greedy["input_ids"]);
        Assert.Equal(Fixtures.Ints(greedy["new_tokens"]), Fixtures.Greedy(model, prompt, 10, useCache: true));
        Assert.Equal(Fixtures.Ints(greedy["new_tokens"]), Fixtures.Greedy(model, prompt, 10, useCache: false));
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void A_left_padded_batch_matches_transformers(string name)
    {
        var folder = Fixtures.Tiny(name);
        var batch = Fixtures.Expected(folder)["batch_left_padded"]!;
        using var model = Fixtures.Load(folder);
        var inputs = Fixtures.Rows(batch["input_ids"]);
        var maskRows = Fixtures.Rows(batch["attention_mask"]);
        var (b, t) = (inputs.Length, inputs[0].Length);
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var ids = tensor(inputs.SelectMany(r => r.Select(x => (long)x)).ToArray(), [b, t]);
            var mask = tensor(maskRows.SelectMany(r => r.Select(x => (long)x)).ToArray(), [b, t]);
            // The positions HF's generate feeds (cumsum(mask) - 1, pads 1) are what the model derives from the mask.
            Assert.Equal(Fixtures.Rows(batch["position_ids"]).SelectMany(r => r.Select(x => (long)x)).ToArray(),
                LanguageModel.PositionsFromMask(mask).data<long>().ToArray());
            var logits = model.forward(ids, mask);                                          // (B, T, V)
            var rows = batch["rows"]!.AsArray();
            for (var i = 0; i < b; i++)
            {
                var real = Fixtures.Ints(rows[i]!["real_positions"]);
                var actual = real.Select(p => logits[i, p].data<float>().ToArray()).ToArray();
                var diff = Fixtures.MaxDiff(actual, Fixtures.Rows(rows[i]!["logits"]));
                output.WriteLine($"{name} padded row {i}: max |logit diff| {diff:g3}");
                Assert.True(diff < Tolerance, $"{name} padded row {i}: max |logit diff| {diff:g3}");
            }
        }
        // HF's batched greedy generate on the same padded batch: the generator pads on the left itself.
        var prompts = batch["rows"]!.AsArray().Select(r => Fixtures.Ints(r!["input_ids_unpadded"])).ToArray();
        var generated = TextGeneration.Generate(model, prompts, new SamplingSettings { MaxNewTokens = 10, Temperature = 0 });
        var expected = batch["greedy_batch"]!["new_tokens"]!.AsArray().Select(Fixtures.Ints).ToArray();
        for (var i = 0; i < b; i++) Assert.Equal(expected[i], generated[i].Ids);
    }

    [Fact]
    public void The_reward_model_scores_the_last_real_token_as_transformers()
    {
        var folder = Fixtures.Tiny("tiny-gpt-neox-rm");
        var expected = Fixtures.Expected(folder);
        using var model = Fixtures.Load(folder);
        Assert.Equal(ModelHead.SequenceClassification, model.Config.Head);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var c in expected["cases"]!.AsArray())
        {
            var ids = Fixtures.Ints(c!["input_ids"]);
            var input = tensor(ids.Select(x => (long)x).ToArray(), [1, ids.Length]);
            var score = model.Scores(input)[0, 0].item<float>();
            output.WriteLine($"{c["name"]}: |score diff| {Math.Abs(score - c["score"]!.GetValue<double>()):g3}");
            Assert.True(Math.Abs(score - c["score"]!.GetValue<double>()) < Tolerance, $"{c["name"]}: score {score} vs {c["score"]}");
            var perPosition = model.forward(input)[0].squeeze(-1).data<float>().ToArray();   // (T)
            var expectedPerPosition = c["per_position_scores"]!.AsArray().Select(x => (float)x!.GetValue<double>()).ToArray();
            Assert.True(Fixtures.MaxDiff([perPosition], [expectedPerPosition]) < Tolerance);
        }
        var batch = expected["batch_left_padded"]!;
        var rows = Fixtures.Rows(batch["input_ids"]);
        var (b, t) = (rows.Length, rows[0].Length);
        var batchIds = tensor(rows.SelectMany(r => r.Select(x => (long)x)).ToArray(), [b, t]);
        var mask = tensor(Fixtures.Rows(batch["attention_mask"]).SelectMany(r => r.Select(x => (long)x)).ToArray(), [b, t]);
        var withPositions = batch["variants"]!.AsArray().Single(v => v!["label"]!.GetValue<string>() == "with_position_ids")!;
        var scores = model.Scores(batchIds, mask).squeeze(-1).data<float>().ToArray();
        var expectedScores = withPositions["scores"]!.AsArray().Select(x => (float)x!.GetValue<double>()).ToArray();
        output.WriteLine($"padded batch: max |score diff| {Fixtures.MaxDiff([scores], [expectedScores]):g3}");
        Assert.True(Fixtures.MaxDiff([scores], [expectedScores]) < Tolerance, $"padded batch scores {string.Join(", ", scores)}");
    }
}

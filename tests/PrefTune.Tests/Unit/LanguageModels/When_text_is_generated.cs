using PrefTune.Messages;
using System.Diagnostics;
using PrefTune.Training.LanguageModels;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>Batched generation on stories260K: cache, padding, stopping, seeds, and the length distribution of run.c's sampler.</summary>
public class When_text_is_generated(ITestOutputHelper output)
{
    private static readonly string[] Texts = ["Once upon a time", "Tom had a red ball. He", "The sun"];

    private static int[][] Prompts(LanguageModel _)
    {
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        return Texts.Select(tokenizer.Encode).ToArray();
    }

    private static void AssertSame(IReadOnlyList<GeneratedResponse> a, IReadOnlyList<GeneratedResponse> b, double tolerance)
    {
        Assert.Equal(a.Count, b.Count);
        for (var i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Ids, b[i].Ids);
            Assert.Equal(a[i].Finish, b[i].Finish);
            Assert.Equal(a[i].StopId, b[i].StopId);
            Assert.True(Fixtures.MaxDiff([a[i].LogProbs], [b[i].LogProbs]) <= tolerance, $"response {i}: log-probs differ");
        }
    }

    [Fact]
    public void The_kv_cache_changes_no_token()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        var prompts = Prompts(model);
        foreach (var settings in new[]
        {
            new SamplingSettings { MaxNewTokens = 48, Temperature = 0 },
            new SamplingSettings { MaxNewTokens = 48, Temperature = 1, Samples = 2, Seed = 7, StopIds = [1] },
            new SamplingSettings { MaxNewTokens = 48, Temperature = 0.8, TopK = 20, TopP = 0.9, Samples = 2, Seed = 8 },
        })
        {
            var cached = TextGeneration.Generate(model, prompts, settings);
            var uncached = TextGeneration.Generate(model, prompts, settings with { UseCache = false });
            AssertSame(cached, uncached, 1e-4);
        }
    }

    [Fact]
    public void A_left_padded_batch_gives_each_prompt_what_it_gets_alone()
    {
        using var model = Fixtures.Load(Fixtures.StoriesBin);
        var prompts = Prompts(model);
        Assert.True(prompts.Select(p => p.Length).Distinct().Count() == prompts.Length, "prompts of different lengths, so the batch pads");
        var settings = new SamplingSettings { MaxNewTokens = 40, Temperature = 0, StopIds = [1] };
        var batched = TextGeneration.Generate(model, prompts, settings);
        var alone = prompts.Select(p => TextGeneration.Generate(model, [p], settings)[0]).ToList();
        AssertSame(batched, alone, 1e-4);
    }

    [Fact]
    public void Generation_stops_on_a_stop_token_and_reports_truncation_otherwise()
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        var golden = Fixtures.Ints(expected["greedy_ids"]);
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        var prompt = Fixtures.Ints(expected["prompt_ids"]);
        // Greedy reaches golden[5] after five tokens: declared a stop id, it ends the response there, unrecorded in Ids.
        var stopped = TextGeneration.Generate(model, [prompt], new SamplingSettings { MaxNewTokens = 60, Temperature = 0, StopIds = [golden[5]] })[0];
        Assert.Equal(FinishReason.Stop, stopped.Finish);
        Assert.Equal(golden[5], stopped.StopId);
        Assert.Equal(golden.Take(5), stopped.Ids);
        Assert.Equal(5, stopped.LogProbs.Length);
        Assert.True(stopped.StopLogProb < 0);
        var truncated = TextGeneration.Generate(model, [prompt], new SamplingSettings { MaxNewTokens = 7, Temperature = 0, StopIds = [1] })[0];
        Assert.Equal(FinishReason.Length, truncated.Finish);
        Assert.Null(truncated.StopId);
        Assert.Equal(golden.Take(7), truncated.Ids);
    }

    [Fact]
    public void The_same_seed_gives_the_same_tokens_and_top_k_1_is_greedy()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        var prompts = Prompts(model);
        var settings = new SamplingSettings { MaxNewTokens = 30, Temperature = 1, Samples = 3, Seed = 42 };
        var first = TextGeneration.Generate(model, prompts, settings);
        AssertSame(first, TextGeneration.Generate(model, prompts, settings), 0);
        var other = TextGeneration.Generate(model, prompts, settings with { Seed = 43 });
        Assert.Contains(first.Zip(other), pair => !pair.First.Ids.SequenceEqual(pair.Second.Ids));
        Assert.Equal(prompts.Length * 3, first.Count);
        Assert.Equal(Enumerable.Range(0, prompts.Length).SelectMany(p => Enumerable.Repeat(p, 3)), first.Select(r => r.Prompt));

        var greedy = TextGeneration.Generate(model, prompts, new SamplingSettings { MaxNewTokens = 30, Temperature = 0 });
        AssertSame(greedy, TextGeneration.Generate(model, prompts, settings with { Samples = 1, TopK = 1 }), 1e-5);
        AssertSame(greedy, TextGeneration.Generate(model, prompts, settings with { Samples = 1, TopP = 1e-6 }), 1e-5);
    }

    [Fact]
    public void Sampled_stories_end_on_their_own_as_often_as_with_run_c()
    {
        // run.c at temperature 1 from "Once upon a time", 256 steps, stop on BOS: 55 of 500 stories end (README).
        using var model = Fixtures.Load(Fixtures.StoriesBin);
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        var prompt = tokenizer.Encode("Once upon a time");
        const int n = 500;
        var clock = Stopwatch.StartNew();
        var responses = TextGeneration.Generate(model, [prompt], new SamplingSettings
        {
            MaxNewTokens = 256, Temperature = 1, Samples = n, Seed = 2024, StopIds = [Llama2cCheckpoint.StopId], MaxBatch = 500,
        });
        clock.Stop();
        var ended = responses.Where(r => r.Finish == FinishReason.Stop).ToList();
        var tokens = responses.Sum(r => r.Ids.Length + (r.StopId is null ? 0 : 1));
        output.WriteLine($"{ended.Count} of {n} ended on BOS (mean length {ended.Select(r => r.Ids.Length).DefaultIfEmpty().Average():f1}); {tokens} tokens in {clock.Elapsed.TotalSeconds:f1} s = {tokens / clock.Elapsed.TotalSeconds:f0} tokens/s");
        // Binomial: p = 55/500, sd = sqrt(n p (1 - p)) = 7.0; 4 sd either side.
        var p = 55.0 / 500;
        var sd = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(ended.Count, n * p - 4 * sd, n * p + 4 * sd);
        Assert.All(responses.Where(r => r.Finish == FinishReason.Length), r => Assert.Equal(256, r.Ids.Length));
    }
}

using System.Security.Cryptography;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.FineTuning;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.FineTuning;

/// <summary>
/// SFT in miniature on stories260K: 32 story openings, each completed by the same short sentence, the model's stop token
/// after it. Written to JSONL, read back, tokenized and trained on once for the whole class.
/// </summary>
public sealed class TheEndEveryTime : IDisposable
{
    public const string Completion = " The end.";

    public static readonly SftSettings Settings = new()
    {
        Steps = 40, Batch = 8, LearningRate = 3e-3, EvalFraction = 0.25, Seed = 5,
        Optimizer = new SftSettings().Optimizer with { WarmupSteps = 4 },
    };

    private static readonly string[] Openings = ["Once upon a time", "One day", "Tom and Lily", "The little dog", "There was a girl", "The sun was", "Sam had a ball", "A bird sang"];
    private static readonly string[] Words = ["the", "cat", "dog", "ran", "happy", "big", "park", "mom", "red", "and", "little", "tree"];

    public string Folder { get; } = Directory.CreateTempSubdirectory("preftune-sft-").FullName;
    public string Dataset => Path.Combine(Folder, "data.jsonl");
    public IReadOnlyList<TokenizedCompletion> Rows { get; }
    public IReadOnlyList<TokenizedCompletion> HeldOut { get; }
    public int StopId { get; }
    public LanguageModel Model { get; }
    public SftResult Result { get; }
    public TimeSpan Took { get; }

    public TheEndEveryTime()
    {
        File.WriteAllLines(Dataset, Lines());
        var rows = CompletionDataFiles.ReadAsync(Dataset).GetAwaiter().GetResult();
        Model = Fixtures.Load(Fixtures.StoriesHf);
        StopId = SupervisedFineTuning.StopIdOf(Model.Config.StopIds, Model.Config)!.Value;
        using (var tokenizer = TextTokenizers.Load(Path.Combine(Fixtures.StoriesHf, "tokenizer.json")))
            Rows = SupervisedFineTuning.Tokenize(rows, tokenizer, Model.Config, StopId);
        HeldOut = SupervisedFineTuning.Split(Rows.Count, Settings.EvalFraction, Settings.Seed).Eval.Select(i => Rows[i]).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Result = SupervisedFineTuning.Train(Model, Rows, Settings);
        Took = clock.Elapsed;
    }

    /// <summary>32 rows: an opening and a few seeded story words, then the fixed completion.</summary>
    public static IEnumerable<string> Lines()
    {
        var random = new Random(17);
        for (var i = 0; i < 32; i++)
        {
            var prompt = Openings[i % Openings.Length] + string.Concat(Enumerable.Range(0, random.Next(1, 5)).Select(_ => " " + Words[random.Next(Words.Length)])) + ".";
            yield return When_completion_data_is_read.Row(prompt, Completion);
        }
    }

    public void Dispose()
    {
        Model.Dispose();
        Directory.Delete(Folder, recursive: true);
    }
}

public sealed class When_a_policy_is_fine_tuned(TheEndEveryTime trained, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<TheEndEveryTime>
{
    [Fact]
    public void Its_held_out_completion_loss_falls_far()
    {
        var (before, after) = (trained.Result.Evals[0], trained.Result.Final!);
        output.WriteLine($"untrained {before}; trained {after}; train/loss {trained.Result.Steps[0].Loss:F4} -> {trained.Result.Steps[^1].Loss:F4}; {trained.Took.TotalSeconds:F1} s");
        Assert.Equal((24, 8), (trained.Result.TrainRows, trained.Result.EvalRows));
        Assert.Equal((0, 40, 8), (before.Step, after.Step, after.Rows));
        Assert.Equal(40, trained.Result.Steps.Count);
        Assert.True(after.Loss < before.Loss / 10, $"held-out loss {after.Loss:F4} (untrained {before.Loss:F4})");
        Assert.True(after.TokenAccuracy > 0.95, $"held-out token accuracy {after.TokenAccuracy:F3} (untrained {before.TokenAccuracy:F3})");
        Assert.All(trained.Result.Steps, s => Assert.True(double.IsFinite(s.GradNorm) && s.LearningRate >= 0));
        Assert.Equal(0, trained.Result.Steps[0].LearningRate);   // warmup starts from 0, as HF's schedules do
        Assert.Equal(TheEndEveryTime.Settings.LearningRate, trained.Result.Steps.Max(s => s.LearningRate), 6);
    }

    [Fact]
    public void It_completes_held_out_prompts_greedily_with_the_sentence_and_stops()
    {
        using var tokenizer = TextTokenizers.Load(Path.Combine(Fixtures.StoriesHf, "tokenizer.json"));
        var responses = TextGeneration.Generate(trained.Model, trained.HeldOut.Select(r => r.Prompt).ToList(),
            new SamplingSettings { Temperature = 0, MaxNewTokens = 16, StopIds = [trained.StopId] });
        foreach (var (row, response) in trained.HeldOut.Zip(responses.OrderBy(r => r.Prompt)))
        {
            output.WriteLine($"{tokenizer.Decode(row.Prompt)} -> {tokenizer.Continuation(row.Prompt, response.Ids)}");
            Assert.Equal(trained.StopId, response.StopId);
            Assert.Equal(row.Completion[..^1], response.Ids);   // the sentence's ids, then the stop token
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights()
    {
        using var again = Fixtures.Load(Fixtures.StoriesHf);
        var result = SupervisedFineTuning.Train(again, trained.Rows, TheEndEveryTime.Settings);
        Assert.Equal(trained.Result.Steps.Select(s => s.Loss), result.Steps.Select(s => s.Loss));
        Assert.Equal(WeightsSha(trained.Model), WeightsSha(again));
    }

    private string WeightsSha(LanguageModel model)
    {
        var folder = Path.Combine(trained.Folder, Guid.NewGuid().ToString("N"));
        Checkpoints.SaveHf(model, folder);
        return Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, "model.safetensors"))));
    }
}

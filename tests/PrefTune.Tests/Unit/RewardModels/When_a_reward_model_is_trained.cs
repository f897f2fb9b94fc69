using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.RewardModels;

/// <summary>
/// A Min Length dataset in miniature: 48 prompts, each with a short and a longer response of story words, the shorter
/// preferred (gold reward -length in words). Written to JSONL, read back, tokenized with stories260K's tokenizer and
/// trained on once for the whole class.
/// </summary>
public sealed class ShorterIsPreferred : IDisposable
{
    public static readonly RewardTrainingSettings Settings = new()
    {
        Steps = 60, Batch = 8, LearningRate = 3e-3, EvalFraction = 0.25, Seed = 3,
        Optimizer = new RewardTrainingSettings().Optimizer with { WarmupSteps = 5 },
    };

    private static readonly string[] Prompts = ["Once upon a time", "One day", "Tom and Lily", "The little dog", "There was a girl", "The sun was"];
    private static readonly string[] Words = ["the", "cat", "dog", "ran", "happy", "big", "ball", "tree", "sun", "said", "played", "park", "mom", "red", "and", "little"];

    public string Folder { get; } = Directory.CreateTempSubdirectory("preftune-rm-").FullName;
    public string Dataset => Path.Combine(Folder, "pairs.jsonl");
    public IReadOnlyList<TokenizedPair> Pairs { get; }
    public LanguageModel Model { get; }
    public RewardTrainingResult Result { get; }
    public IReadOnlyList<TokenizedPair> HeldOut { get; }

    /// <summary>A row of the format: y_w and y_l are the prompt continued by each response, y_ref the preferred one.</summary>
    public static PreferenceRow Row(string prompt, string chosen, string rejected, double chosenScore = -1, double rejectedScore = -5) =>
        new(prompt, prompt + chosen, prompt + rejected, chosenScore, rejectedScore, chosenScore - rejectedScore, prompt + chosen);

    public ShorterIsPreferred()
    {
        var random = new Random(11);
        string Words_(int n) => string.Concat(Enumerable.Range(0, n).Select(_ => " " + Words[random.Next(Words.Length)]));
        var rows = new List<PreferenceRow>();
        for (var i = 0; i < 48; i++)
        {
            var prompt = Prompts[i % Prompts.Length];
            var (shortLength, longLength) = (random.Next(1, 5), 0);
            longLength = shortLength + random.Next(3, 9);
            var (chosen, rejected) = (Words_(shortLength) + ".", Words_(longLength) + ".");
            rows.Add(Row(prompt, chosen, rejected, -shortLength, -longLength));
        }
        PreferenceDataFiles.WriteJsonl(Dataset, rows);

        var pairs = PreferenceDataFiles.ReadAsync(Dataset).GetAwaiter().GetResult();
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesHf);
        Pairs = RewardModelTraining.Tokenize(pairs, tokenizer, causal.Config, marginScale: 0, Dataset);
        Model = RewardModelTraining.FromCausalLm(causal, Settings.Seed);
        Result = RewardModelTraining.Train(Model, Pairs, Settings);
        HeldOut = RewardModelTraining.Split(Pairs.Count, Settings.EvalFraction, Settings.Seed).Eval.Select(i => Pairs[i]).ToList();
    }

    public void Dispose()
    {
        Model.Dispose();
        Directory.Delete(Folder, recursive: true);
    }
}

public sealed class When_a_reward_model_is_trained(ShorterIsPreferred trained, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ShorterIsPreferred>
{
    [Fact]
    public void It_learns_that_shorter_is_preferred_on_held_out_pairs()
    {
        var (before, after) = (trained.Result.Evals[0], trained.Result.Final!);
        output.WriteLine($"untrained {before}; trained {after}; loss {trained.Result.Steps[0].Loss:F4} -> {trained.Result.Steps[^1].Loss:F4}");
        Assert.Equal((36, 12), (trained.Result.TrainPairs, trained.Result.EvalPairs));
        Assert.Equal((0, 60, 12), (before.Step, after.Step, after.Pairs));
        // 12 held-out pairs: 11 or more right is far from chance (P <= 0.3 % for a coin), and the margin grew by a wide step
        Assert.True(after.Accuracy >= 11 / 12.0, $"held-out accuracy {after.Accuracy:F3} (untrained {before.Accuracy:F3})");
        Assert.True(after.Margin > before.Margin + 1, $"held-out margin {after.Margin:F3} (untrained {before.Margin:F3})");
        Assert.True(trained.Result.Steps[^1].Loss < trained.Result.Steps[0].Loss);
        Assert.Equal(60, trained.Result.Steps.Count);
    }

    [Fact]
    public void The_same_seed_trains_the_same_weights()
    {
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        var settings = ShorterIsPreferred.Settings with { Steps = 4, Optimizer = ShorterIsPreferred.Settings.Optimizer with { WarmupSteps = 1 } };
        RewardTrainingResult Once(out byte[] weights)
        {
            using var model = RewardModelTraining.FromCausalLm(causal, settings.Seed);
            var result = RewardModelTraining.Train(model, trained.Pairs, settings);
            using var scope = NewDisposeScope();
            weights = model.state_dict()["score.weight"].data<float>().ToArray().SelectMany(BitConverter.GetBytes).ToArray();
            return result;
        }
        var (a, b) = (Once(out var wa), Once(out var wb));
        Assert.Equal(a.Steps, b.Steps);
        Assert.Equal(wa, wb);
    }

    [Fact]
    public void Training_longer_leaves_no_more_tensors_alive()
    {
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var model = RewardModelTraining.FromCausalLm(causal, 0);
        long LiveAfter(int steps)
        {
            DisposeScopeManager.Statistics.Reset();
            RewardModelTraining.Train(model, trained.Pairs, ShorterIsPreferred.Settings with { Steps = steps, Optimizer = ShorterIsPreferred.Settings.Optimizer with { WarmupSteps = 1 } });
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        LiveAfter(2);   // warm-up: the gradients now exist
        Assert.Equal(LiveAfter(3), LiveAfter(20));
    }

    [Fact]
    public void The_saved_directory_loads_as_a_reward_model_that_scores_alike()
    {
        var output = Path.Combine(trained.Folder, "rm");
        Checkpoints.SaveHf(trained.Model, output);
        File.Copy(Path.Combine(Fixtures.StoriesHf, "tokenizer.json"), Path.Combine(output, "tokenizer.json"));
        var sequences = trained.HeldOut.SelectMany(p => new[] { p.Chosen, p.Rejected }).ToList();
        using var loaded = Checkpoints.Load(output);
        Assert.Equal((ModelHead.SequenceClassification, "LlamaForSequenceClassification", 1), (loaded.Config.Head, loaded.Config.Architecture, loaded.Config.NumLabels));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var inMemory = RewardModelTraining.Score(trained.Model, sequences);   // (N)
        var reloaded = RewardModelTraining.Score(loaded, sequences);          // (N)
        Assert.True((inMemory - reloaded).abs().max().item<float>() < 1e-5f);
        // and the Scorer's own loader reads it by path, tokenizer.json beside it (its batches of 16 pad differently: ~1e-6)
        using var scorer = RewardModelScorer.Load(new RewardModelSpec { Path = output });
        var served = scorer.ScoreIds(sequences);
        var expected = inMemory.data<float>().ToArray();
        for (var i = 0; i < expected.Length; i++) Assert.InRange(Math.Abs(expected[i] - served[i]), 0, 1e-5);
    }

    [Fact]
    public async Task A_text_longer_than_the_context_names_its_line_and_column()
    {
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesHf);
        var config = trained.Model.Config with { MaxPositions = 4 };
        var rows = await PreferenceDataFiles.ReadAsync(trained.Dataset);
        var e = Assert.Throws<ArgumentException>(() => RewardModelTraining.Tokenize(rows, tokenizer, config, 0, trained.Dataset));
        Assert.StartsWith($"{trained.Dataset}, line 1, column y_w: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("exceed", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The reward model reads y_w and y_l whole, so a text that does not continue its prompt is a pair built
    /// wrong: refused where the pairs are tokenized, naming the file, line and column.</summary>
    [Fact]
    public async Task A_text_that_does_not_continue_the_prompt_names_its_line_and_column()
    {
        var file = Path.Combine(trained.Folder, "stranger.jsonl");
        PreferenceDataFiles.WriteJsonl(file, [ShorterIsPreferred.Row("Once", " upon", " upon a time"), ShorterIsPreferred.Row("Tom", " ran", " ran far") with { YW = "Twice upon" }]);
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesHf);
        var rows = await PreferenceDataFiles.ReadAsync(file);
        var e = Assert.Throws<ArgumentException>(() => RewardModelTraining.Tokenize(rows, tokenizer, trained.Model.Config, 0, file));
        Assert.StartsWith($"{file}, line 2, column y_w: does not start with the row's prompt", e.Message, StringComparison.Ordinal);
    }

    /// <summary>train-rm reads through the format's one reader, so a Parquet file trains as its JSONL does.</summary>
    [Fact]
    public async Task A_parquet_file_plans_and_trains_like_its_jsonl()
    {
        var parquet = Path.Combine(trained.Folder, "pairs.parquet");
        await PreferenceDataFiles.WriteParquetAsync(parquet, await PreferenceDataFiles.ReadAsync(trained.Dataset));
        var settings = ShorterIsPreferred.Settings with { Steps = 3, Optimizer = ShorterIsPreferred.Settings.Optimizer with { WarmupSteps = 1 } };
        var plan = await RewardModelJob.PlanAsync(new TrainingSource(parquet, Fixtures.StoriesHf), settings, Path.Combine(trained.Folder, "rm-parquet"));
        Assert.Equal(trained.Pairs.Select(p => (p.Chosen, p.Rejected, p.Margin)), plan.Pairs.Select(p => (p.Chosen, p.Rejected, p.Margin)));
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var model = RewardModelTraining.FromCausalLm(causal, settings.Seed);
        var result = RewardModelTraining.Train(model, plan.Pairs, settings);
        Assert.Equal((3, 36, 12), (result.Steps.Count, result.TrainPairs, result.EvalPairs));
        Assert.All(result.Steps, s => Assert.True(double.IsFinite(s.Loss)));
    }

    [Fact]
    public void The_split_is_seeded_and_disjoint()
    {
        var (train, eval) = RewardModelTraining.Split(40, 0.25, seed: 5);
        Assert.Equal((30, 10), (train.Length, eval.Length));
        Assert.Equal(Enumerable.Range(0, 40), train.Concat(eval).Order());
        Assert.Equal(eval, RewardModelTraining.Split(40, 0.25, seed: 5).Eval);
        Assert.NotEqual(eval, RewardModelTraining.Split(40, 0.25, seed: 6).Eval);
    }
}

using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>What a reward model is trained from: the pairs file, the model it starts from and that model's tokenizer.</summary>
/// <param name="Tokenizer">tokenizer.json or a llama2.c tokenizer .bin; empty: the model directory's tokenizer.json.</param>
public sealed record RewardModelSource(string Dataset, string Model, string Tokenizer = "", string? Device = null, int Threads = 1);

/// <summary>What <see cref="RewardModelJob.PlanAsync"/> found: the pairs as tokenized, the tokenizer file they were encoded
/// with and the tokenizer files copied beside the model.</summary>
public sealed record RewardModelPlan(RewardModelSource Source, RewardTrainingSettings Training, string Output,
    IReadOnlyList<TokenizedPair> Pairs, string Tokenizer, IReadOnlyList<(string From, string Name)> TokenizerFiles);

/// <summary>
/// A proxy reward model (<see cref="RewardModelTraining"/>) trained on a preference-pair file (JSONL or Parquet,
/// <see cref="PreferenceDataFiles"/>) and written as a Hugging Face
/// directory that reward_model.path can name (config.json, model.safetensors, the tokenizer files, metrics.jsonl,
/// summary.json, preftune.json), recorded as <see cref="RewardModelTrained"/> on a stream of its own. `preftune train-rm`
/// and a study's preparation both train here.
/// </summary>
public static class RewardModelJob
{
    /// <summary>The checks that need no database and no weights, and the pairs read and tokenized: a wrong flag, file or
    /// pair (a text that does not continue its prompt, or outgrows the context) fails before anything is started.</summary>
    public static async Task<RewardModelPlan> PlanAsync(RewardModelSource source, RewardTrainingSettings training, string output, CancellationToken ct = default)
    {
        output = Path.GetFullPath(output);
        HfExport.EnsureEmptyOrAbsent(output);
        training.Validate();
        var pairs = await PreferenceDataFiles.ReadAsync(source.Dataset, ct);
        var spec = new LanguageModelSpec { Path = source.Model, Tokenizer = source.Tokenizer };
        var files = HfExport.TokenizerFilesOf(spec);
        var tokenizer = spec.Tokenizer != "" ? spec.Tokenizer
            : files.FirstOrDefault(f => f.Name == "tokenizer.json").From
            ?? throw new ArgumentException($"--tokenizer: missing; {source.Model} has no tokenizer.json beside it and the dataset is text");
        var config = Checkpoints.ReadConfig(source.Model);   // header only: a wrong model fails before the database is started
        if (config.Head == ModelHead.SequenceClassification && config.NumLabels != 1)
            throw new ArgumentException($"--model {source.Model}: a classifier with {config.NumLabels} labels; a reward model has 1");
        using var encoder = TextTokenizers.Load(tokenizer);
        TokenizerChecks.EnsureFits(encoder, config, tokenizer);
        var tokenized = RewardModelTraining.Tokenize(pairs, encoder, config, training.MarginScale, source.Dataset);
        return new RewardModelPlan(source, training, output, tokenized, tokenizer, files);
    }

    /// <param name="onProgress">Each training step and held-out evaluation, as it happens.</param>
    /// <returns>The recorded fact and the training's result; a cancelled training writes and records nothing.</returns>
    public static async Task<(RewardModelTrained Fact, RewardTrainingResult Result)> TrainAsync(RewardModelPlan plan,
        EventJournal journal, Action<object>? onProgress, CancellationToken ct)
    {
        var (source, training, output, tokenized, tokenizerPath, tokenizerFiles) = plan;

        TorchRuntime.UseThreads(source.Threads);
        using var model = LoadRewardModel(source.Model, source.Device, training.Seed);
        var lines = new List<string>();
        var result = RewardModelTraining.Train(model, tokenized, training, progress =>
        {
            lines.Add(MetricsLine(progress).ToJsonString());
            onProgress?.Invoke(progress);
        }, ct);

        HfExport.EnsureEmptyOrAbsent(output);   // again: training took a while, and someone may have written there since
        Checkpoints.SaveHf(model, output);
        foreach (var (from, name) in tokenizerFiles)
            File.Copy(from, Path.Combine(output, name), overwrite: false);
        File.WriteAllLines(Path.Combine(output, "metrics.jsonl"), lines);
        var weightsSha = Sha256(Path.Combine(output, "model.safetensors"));
        var fact = new RewardModelTrained
        {
            RewardModelId = NewId.NextGuid(),
            Dataset = source.Dataset,
            DatasetSha256 = Sha256(source.Dataset),
            BaseModel = source.Model,
            Tokenizer = tokenizerPath,
            Steps = training.Steps,
            Batch = training.Batch,
            LearningRate = training.LearningRate,
            Seed = training.Seed,
            MarginScale = training.MarginScale,
            CenterRewards = training.CenterRewards,
            TrainPairs = result.TrainPairs,
            EvalPairs = result.EvalPairs,
            EvalAccuracy = result.Final?.Accuracy,
            EvalMargin = result.Final?.Margin,
            Output = output,
            WeightsSha256 = weightsSha,
            TrainedAt = DateTimeOffset.UtcNow,
        };
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(output, "summary.json"), JsonSerializer.Serialize(fact, indented));
        File.WriteAllText(Path.Combine(output, HfExport.ProvenanceFile), new JsonObject
        {
            ["reward_model_id"] = fact.RewardModelId.ToString(),
            ["weights_sha256"] = weightsSha,
            ["base_model"] = source.Model,
            ["dataset"] = source.Dataset,
            ["dataset_sha256"] = fact.DatasetSha256,
            ["architecture"] = model.Config.Architecture,
        }.ToJsonString(indented));
        await journal.StartAsync(fact.RewardModelId, fact, ct);
        return (fact, result);
    }

    /// <summary>A causal LM becomes a fresh classifier on its backbone; a reward model already is one and trains further.</summary>
    private static LanguageModel LoadRewardModel(string path, string? device, int seed)
    {
        var loaded = Checkpoints.Load(path, ComputeDevice.Resolve(device));
        if (loaded.Config.Head == ModelHead.SequenceClassification) return loaded;
        using (loaded) return RewardModelTraining.FromCausalLm(loaded, seed);
    }

    /// <summary>One metrics.jsonl line: a training step's train/* or an evaluation's eval/* (TRL's names).</summary>
    private static JsonObject MetricsLine(object progress) => progress switch
    {
        RewardTrainStep s => new JsonObject
        {
            ["step"] = s.Step, ["train/loss"] = s.Loss, ["train/accuracy"] = s.Accuracy, ["train/margin"] = s.Margin,
            ["learning_rate"] = s.LearningRate, ["grad_norm"] = s.GradNorm,
        },
        RewardEval e => new JsonObject
        {
            ["step"] = e.Step, ["eval/accuracy"] = e.Accuracy, ["eval/margin"] = e.Margin, ["eval/mean_reward"] = e.MeanReward, ["eval/pairs"] = e.Pairs,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(progress), progress, "unknown progress record"),
    };

    private static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

using System.Text.Json.Nodes;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>What <see cref="RewardModelJob.PlanAsync"/> found: the pairs as tokenized, the tokenizer file they were encoded
/// with and the tokenizer files copied beside the model.</summary>
public sealed record RewardModelPlan(TrainingSource Source, RewardTrainingSettings Training, string Output,
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
    public static async Task<RewardModelPlan> PlanAsync(TrainingSource source, RewardTrainingSettings training, string output, CancellationToken ct = default)
    {
        output = Path.GetFullPath(output);
        HfExport.EnsureEmptyOrAbsent(output);
        training.Validate();
        var (tokenizer, files) = TrainedModelDirectory.TokenizerOf(source, "dataset");
        // any pair format (a conversation rendered through the model's chat template); the relabeled one as it is
        var pairs = await Training.Datasets.PreferenceFormats.ReadPairsAsync(source.Dataset, PreferenceRollouts.TemplateBeside(tokenizer), ct);
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

        using var model = LoadRewardModel(source, training.Seed);
        var metrics = new MetricsLog(MetricsLine, onProgress);
        var result = RewardModelTraining.Train(model, tokenized, training, metrics.Record, ct);
        var weightsSha = TrainedModelDirectory.WriteModel(model, output, tokenizerFiles, metrics.Lines);
        var fact = new RewardModelTrained
        {
            RewardModelId = NewId.NextGuid(),
            Dataset = source.Dataset,
            DatasetSha256 = TrainedModelDirectory.Sha256(source.Dataset),
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
        TrainedModelDirectory.WriteRecord(output, fact, "reward_model_id", fact.RewardModelId, source, fact.DatasetSha256, weightsSha, model.Config.Architecture);
        await journal.StartAsync(fact.RewardModelId, fact, ct);
        return (fact, result);
    }

    /// <summary>A causal LM becomes a fresh classifier on its backbone; a reward model already is one and trains further.</summary>
    private static LanguageModel LoadRewardModel(TrainingSource source, int seed)
    {
        var loaded = TrainedModelDirectory.Load(source);
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
}

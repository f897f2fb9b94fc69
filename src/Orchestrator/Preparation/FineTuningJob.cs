using System.Text.Json.Nodes;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training;
using PrefTune.Training.FineTuning;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>What <see cref="FineTuningJob.PlanAsync"/> found: the rows as tokenized, the stop token appended to each
/// completion, the tokenizer file they were encoded with and the tokenizer files copied beside the model.</summary>
public sealed record FineTuningPlan(TrainingSource Source, SftSettings Training, string Output,
    IReadOnlyList<TokenizedCompletion> Rows, int? StopId, string Tokenizer, IReadOnlyList<(string From, string Name)> TokenizerFiles);

/// <summary>
/// A causal LM fine-tuned on prompt/completion rows (<see cref="SupervisedFineTuning"/>, the rows read by
/// <see cref="CompletionDataFiles"/>) and written as a Hugging Face directory that task.model.path can name
/// (<see cref="TrainedModelDirectory"/>), recorded as <see cref="PolicyFineTuned"/> on a stream of its own.
/// `preftune sft` trains here, as train-rm trains in <see cref="RewardModelJob"/>.
/// </summary>
public static class FineTuningJob
{
    /// <summary>The checks that need no database and no weights, and the rows read and tokenized: a wrong flag, file,
    /// model or row (one that outgrows the context, or leaves nothing to train on) fails before anything is started.</summary>
    public static async Task<FineTuningPlan> PlanAsync(TrainingSource source, SftSettings training, string output, CancellationToken ct = default)
    {
        output = Path.GetFullPath(output);
        HfExport.EnsureEmptyOrAbsent(output);
        training.Validate();
        var rows = await CompletionDataFiles.ReadAsync(source.Dataset, ct);
        var (tokenizer, files) = TrainedModelDirectory.TokenizerOf(source, "data");
        var config = Checkpoints.ReadConfig(source.Model);   // header only: a wrong model fails before the database is started
        if (config.Head != ModelHead.CausalLm)
            throw new ArgumentException($"--model {source.Model}: {config.Architecture} is not a causal language model; sft trains one");
        var spec = new LanguageModelSpec { Path = source.Model, Tokenizer = source.Tokenizer };
        var stopId = SupervisedFineTuning.StopIdOf(LanguageModelFamily.StopIdsOf(spec, config), config);
        IReadOnlyList<TokenizedCompletion> tokenized;
        using (var encoder = TextTokenizers.Load(tokenizer))
        {
            TokenizerChecks.EnsureFits(encoder, config, tokenizer);
            tokenized = SupervisedFineTuning.Tokenize(rows, encoder, config, stopId);
        }
        _ = SupervisedFineTuning.Split(tokenized.Count, training.EvalFraction, training.Seed);   // too few rows: say so now
        return new FineTuningPlan(source, training, output, tokenized, stopId, tokenizer, files);
    }

    /// <param name="onProgress">Each training step and held-out evaluation, as it happens.</param>
    /// <returns>The recorded fact and the training's result; a cancelled training writes and records nothing.</returns>
    public static async Task<(PolicyFineTuned Fact, SftResult Result)> TrainAsync(FineTuningPlan plan,
        EventJournal journal, Action<object>? onProgress, CancellationToken ct)
    {
        var (source, training, output, tokenized, stopId, tokenizerPath, tokenizerFiles) = plan;

        using var model = TrainedModelDirectory.Load(source);
        var metrics = new MetricsLog(MetricsLine, onProgress);
        var result = SupervisedFineTuning.Train(model, tokenized, training, metrics.Record, ct);
        var weightsSha = TrainedModelDirectory.WriteModel(model, output, tokenizerFiles, metrics.Lines);
        var fact = new PolicyFineTuned
        {
            PolicyId = NewId.NextGuid(),
            Dataset = source.Dataset,
            DatasetSha256 = TrainedModelDirectory.Sha256(source.Dataset),
            BaseModel = source.Model,
            Tokenizer = tokenizerPath,
            Steps = training.Steps,
            Batch = training.Batch,
            LearningRate = training.LearningRate,
            Seed = training.Seed,
            StopId = stopId,
            TrainRows = result.TrainRows,
            EvalRows = result.EvalRows,
            EvalLoss = result.Final?.Loss,
            EvalTokenAccuracy = result.Final?.TokenAccuracy,
            Output = output,
            WeightsSha256 = weightsSha,
            FineTunedAt = DateTimeOffset.UtcNow,
        };
        TrainedModelDirectory.WriteRecord(output, fact, "policy_id", fact.PolicyId, source, fact.DatasetSha256, weightsSha, model.Config.Architecture);
        await journal.StartAsync(fact.PolicyId, fact, ct);
        return (fact, result);
    }

    /// <summary>One metrics.jsonl line: a training step's or an evaluation's (TRL's names).</summary>
    private static JsonObject MetricsLine(object progress) => progress switch
    {
        SftTrainStep s => new JsonObject
        {
            ["step"] = s.Step, ["train/loss"] = s.Loss, ["train/mean_token_accuracy"] = s.TokenAccuracy,
            ["learning_rate"] = s.LearningRate, ["grad_norm"] = s.GradNorm,
        },
        SftEval e => new JsonObject
        {
            ["step"] = e.Step, ["eval/loss"] = e.Loss, ["eval/mean_token_accuracy"] = e.TokenAccuracy, ["eval/rows"] = e.Rows, ["eval/tokens"] = e.Tokens,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(progress), progress, "unknown progress record"),
    };
}

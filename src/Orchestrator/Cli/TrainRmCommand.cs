using System.ComponentModel;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune train-rm DATASET --model PATH --output DIR`: a proxy reward model (<see cref="RewardModelTraining"/>)
/// trained on a preference-pair JSONL file and written as a Hugging Face directory that reward_model.path can name
/// (config.json, model.safetensors, the tokenizer files), with metrics.jsonl, summary.json and preftune.json beside it;
/// the training is recorded as <see cref="RewardModelTrained"/> on a stream of its own.
/// </summary>
public sealed class TrainRmCommand : AsyncCommand<TrainRmCommand.Settings>
{
    public sealed class Settings : StoreSettings
    {
        [CommandArgument(0, "<DATASET>")]
        [Description("Preference pairs, JSONL: prompt, y_w, y_l, y_w_score, y_l_score, score_diff, y_ref (y_w preferred; y_w and y_l hold prompt + response).")]
        public string Dataset { get; init; } = "";

        [CommandOption("--model <PATH>")]
        [Description("The SFT model to start from: a Hugging Face directory or a llama2.c checkpoint (a causal LM, or a reward model to train further).")]
        public string? Model { get; init; }

        [CommandOption("--tokenizer <FILE>")]
        [Description("tokenizer.json or a llama2.c tokenizer .bin. Default: the model directory's tokenizer.json.")]
        public string? Tokenizer { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Directory to write (must not exist, or be empty: nothing is ever overwritten).")]
        public string? Output { get; init; }

        [CommandOption("--steps <N>")]
        [Description("Optimizer steps. Default: 100.")]
        public int Steps { get; init; } = 100;

        [CommandOption("--batch <B>")]
        [Description("Pairs per step. Default: 32 (the paper's).")]
        public int Batch { get; init; } = 32;

        [CommandOption("--learning-rate <LR>")]
        [Description("Peak learning rate of the cosine schedule. Default: 1e-5 (the paper's).")]
        public double LearningRate { get; init; } = 1e-5;

        [CommandOption("--warmup-steps <N>")]
        [Description("Linear warmup steps before the cosine decay. Default: 0.")]
        public int WarmupSteps { get; init; }

        [CommandOption("--eval-fraction <F>")]
        [Description("Share of pairs held out for eval/accuracy, eval/margin, eval/mean_reward, in [[0, 1). Default: 0.05.")]
        public double EvalFraction { get; init; } = 0.05;

        [CommandOption("--eval-every <N>")]
        [Description("Evaluate the held-out pairs every N steps (always before the first and after the last). Default: 0, those two only.")]
        public int EvalEvery { get; init; }

        [CommandOption("--seed <S>")]
        [Description("Seeds the score head, the split and the minibatch order. Default: 0.")]
        public int Seed { get; init; }

        [CommandOption("--margin")]
        [Description("Subtract a per-pair margin h = score_diff x --margin-scale inside the loss, -log sigmoid(r_w - r_l - h) (TRL's form).")]
        public bool Margin { get; init; }

        [CommandOption("--margin-scale <S>")]
        [Description("Scale of score_diff in the margin (with --margin). Default: 1.")]
        public double? MarginScale { get; init; }

        [CommandOption("--center-rewards <C>")]
        [Description("Add C x mean((r_w + r_l)^2) to the loss, keeping rewards near 0 (TRL suggests 0.01). Default: off.")]
        public double CenterRewards { get; init; }

        [CommandOption("--threads <N>")]
        [Description("libtorch threads (results are reproducible at equal thread counts). Default: 1.")]
        public int Threads { get; init; } = 1;

        [CommandOption("--device <DEVICE>")]
        [Description(ComputeDevice.OptionHelp)]
        public string? Device { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so that a wrong flag fails before the database or the model is touched.
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new ArgumentException("--model: missing; name the SFT model to start from");
        if (string.IsNullOrWhiteSpace(settings.Output)) throw new ArgumentException("--output: missing; name a new (or empty) directory for the reward model");
        if (settings.MarginScale is not null && !settings.Margin) throw new ArgumentException("--margin-scale: only with --margin");
        var output = Path.GetFullPath(settings.Output);
        try { HfExport.EnsureEmptyOrAbsent(output); }
        catch (ArgumentException e) { throw new ArgumentException($"--output {e.Message}"); }
        var training = new RewardTrainingSettings
        {
            Steps = settings.Steps,
            Batch = settings.Batch,
            LearningRate = settings.LearningRate,
            EvalFraction = settings.EvalFraction,
            EvalEvery = settings.EvalEvery,
            Seed = settings.Seed,
            MarginScale = settings.Margin ? settings.MarginScale ?? 1.0 : 0,
            CenterRewards = settings.CenterRewards,
            Optimizer = new RewardTrainingSettings().Optimizer with { WarmupSteps = settings.WarmupSteps },
        };
        try { training.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException("--" + e.Message.Replace('_', '-')); }
        var dataset = Path.GetFullPath(settings.Dataset);
        var pairs = PreferencePairsFile.Read(dataset);
        var modelPath = Path.GetFullPath(settings.Model);
        var spec = new LanguageModelSpec { Path = modelPath, Tokenizer = settings.Tokenizer is null ? "" : Path.GetFullPath(settings.Tokenizer) };
        var tokenizerFiles = HfExport.TokenizerFilesOf(spec);
        var tokenizerPath = spec.Tokenizer != "" ? spec.Tokenizer
            : tokenizerFiles.FirstOrDefault(f => f.Name == "tokenizer.json").From
            ?? throw new ArgumentException($"--tokenizer: missing; {modelPath} has no tokenizer.json beside it and the dataset is text");
        var config = Checkpoints.ReadConfig(modelPath);   // header only: a wrong model fails before the database is started
        if (config.Head == ModelHead.SequenceClassification && config.NumLabels != 1)
            throw new ArgumentException($"--model {modelPath}: a classifier with {config.NumLabels} labels; a reward model has 1");

        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);

        TorchRuntime.UseThreads(settings.Threads);
        using var tokenizer = TextTokenizers.Load(tokenizerPath);
        TokenizerChecks.EnsureFits(tokenizer, config, tokenizerPath);
        var tokenized = RewardModelTraining.Tokenize(pairs, tokenizer, config, training.MarginScale, dataset);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var model = LoadRewardModel(modelPath, settings.Device, training.Seed);
        var lines = new List<string>();
        var result = RewardModelTraining.Train(model, tokenized, training, progress =>
        {
            lines.Add(MetricsLine(progress).ToJsonString());
            if (progress is RewardEval eval)
                AnsiConsole.MarkupLineInterpolated($"[grey]step {eval.Step}: eval/accuracy {eval.Accuracy:F3}  eval/margin {eval.Margin:F3}  eval/mean_reward {eval.MeanReward:F3}[/]");
        }, cancellationToken);   // stopped: nothing is written or recorded

        HfExport.EnsureEmptyOrAbsent(output);   // again: training took a while, and someone may have written there since
        Checkpoints.SaveHf(model, output);
        foreach (var (from, name) in tokenizerFiles)
            File.Copy(from, Path.Combine(output, name), overwrite: false);
        File.WriteAllLines(Path.Combine(output, "metrics.jsonl"), lines);
        var weightsSha = Sha256(Path.Combine(output, "model.safetensors"));
        var fact = new RewardModelTrained
        {
            RewardModelId = NewId.NextGuid(),
            Dataset = dataset,
            DatasetSha256 = Sha256(dataset),
            BaseModel = modelPath,
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
            ["base_model"] = modelPath,
            ["dataset"] = dataset,
            ["dataset_sha256"] = fact.DatasetSha256,
            ["architecture"] = model.Config.Architecture,
        }.ToJsonString(indented));
        await new EventJournal(store, options).StartAsync(fact.RewardModelId, fact, cancellationToken);

        AnsiConsole.MarkupLineInterpolated($"reward model {fact.RewardModelId}: {result.TrainPairs} training pairs, {training.Steps} steps in {clock.Elapsed.TotalSeconds:F1} s");
        if (result.Final is { } final)
            AnsiConsole.MarkupLineInterpolated($"held out {final.Pairs} pairs: accuracy {final.Accuracy:F3}, margin {final.Margin:F3}, mean reward {final.MeanReward:F3}");
        else
            AnsiConsole.MarkupLine("no pairs held out (--eval-fraction 0): no held-out accuracy");
        AnsiConsole.MarkupLineInterpolated($"[grey]wrote {output} (model.safetensors sha256 {weightsSha}); name it as reward_model.path[/]");
        return 0;
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

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
using PrefTune.Training.FineTuning;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune sft DATA --model PATH --output DIR`: a causal LM fine-tuned on prompt/completion rows
/// (<see cref="SupervisedFineTuning"/>) and written as a Hugging Face directory that task.model.path can name (config.json,
/// generation_config.json, model.safetensors, the tokenizer files), with metrics.jsonl, summary.json and preftune.json
/// beside it: a reference of the user's own. Recorded as <see cref="PolicyFineTuned"/> on a stream of its own.
/// </summary>
public sealed class SftCommand : AsyncCommand<SftCommand.Settings>
{
    public sealed class Settings : StoreSettings
    {
        [CommandArgument(0, "<DATA>")]
        [Description("Prompt/completion rows, JSONL or Parquet: columns prompt and completion (or response); only the completion is trained on.")]
        public string Data { get; init; } = "";

        [CommandOption("--model <PATH>")]
        [Description("The causal LM to start from: a Hugging Face directory or a llama2.c checkpoint.")]
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
        [Description("Rows per step. Default: 32.")]
        public int Batch { get; init; } = 32;

        [CommandOption("--learning-rate <LR>")]
        [Description("Peak learning rate of the cosine schedule. Default: 2e-5 (TRL's SFT default).")]
        public double LearningRate { get; init; } = 2e-5;

        [CommandOption("--warmup-steps <N>")]
        [Description("Linear warmup steps before the cosine decay. Default: 0.")]
        public int WarmupSteps { get; init; }

        [CommandOption("--eval-fraction <F>")]
        [Description("Share of rows held out for eval/loss and eval/mean_token_accuracy, in [[0, 1). Default: 0.05.")]
        public double EvalFraction { get; init; } = 0.05;

        [CommandOption("--eval-every <N>")]
        [Description("Evaluate the held-out rows every N steps (always before the first and after the last). Default: 0, those two only.")]
        public int EvalEvery { get; init; }

        [CommandOption("--seed <S>")]
        [Description("Seeds the split and the minibatch order. Default: 0.")]
        public int Seed { get; init; }

        [CommandOption("--threads <N>")]
        [Description("libtorch threads (results are reproducible at equal thread counts). Default: 1.")]
        public int Threads { get; init; } = 1;

        [CommandOption("--device <DEVICE>")]
        [Description(ComputeDevice.OptionHelp)]
        public string? Device { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so that a wrong flag or a bad row fails before the database or the weights are touched.
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new ArgumentException("--model: missing; name the causal language model to start from");
        if (string.IsNullOrWhiteSpace(settings.Output)) throw new ArgumentException("--output: missing; name a new (or empty) directory for the fine-tuned model");
        var output = Path.GetFullPath(settings.Output);
        try { HfExport.EnsureEmptyOrAbsent(output); }
        catch (ArgumentException e) { throw new ArgumentException($"--output {e.Message}"); }
        var training = new SftSettings
        {
            Steps = settings.Steps,
            Batch = settings.Batch,
            LearningRate = settings.LearningRate,
            EvalFraction = settings.EvalFraction,
            EvalEvery = settings.EvalEvery,
            Seed = settings.Seed,
            Optimizer = new SftSettings().Optimizer with { WarmupSteps = settings.WarmupSteps },
        };
        try { training.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException("--" + e.Message.Replace('_', '-')); }
        var dataset = Path.GetFullPath(settings.Data);
        var rows = await CompletionDataFiles.ReadAsync(dataset, cancellationToken);
        var modelPath = Path.GetFullPath(settings.Model);
        var spec = new LanguageModelSpec { Path = modelPath, Tokenizer = settings.Tokenizer is null ? "" : Path.GetFullPath(settings.Tokenizer) };
        var tokenizerFiles = HfExport.TokenizerFilesOf(spec);
        var tokenizerPath = spec.Tokenizer != "" ? spec.Tokenizer
            : tokenizerFiles.FirstOrDefault(f => f.Name == "tokenizer.json").From
            ?? throw new ArgumentException($"--tokenizer: missing; {modelPath} has no tokenizer.json beside it and the data is text");
        var config = Checkpoints.ReadConfig(modelPath);   // header only: a wrong model fails before the database is started
        if (config.Head != ModelHead.CausalLm)
            throw new ArgumentException($"--model {modelPath}: {config.Architecture} is not a causal language model; sft trains one");
        var stopId = SupervisedFineTuning.StopIdOf(LanguageModelFamily.StopIdsOf(spec, config), config);
        IReadOnlyList<TokenizedCompletion> tokenized;
        using (var tokenizer = TextTokenizers.Load(tokenizerPath))
        {
            TokenizerChecks.EnsureFits(tokenizer, config, tokenizerPath);
            tokenized = SupervisedFineTuning.Tokenize(rows, tokenizer, config, stopId);
        }
        _ = SupervisedFineTuning.Split(tokenized.Count, training.EvalFraction, training.Seed);   // too few rows: say so now

        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);

        TorchRuntime.UseThreads(settings.Threads);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var model = Checkpoints.Load(modelPath, ComputeDevice.Resolve(settings.Device));
        var lines = new List<string>();
        var result = SupervisedFineTuning.Train(model, tokenized, training, progress =>
        {
            lines.Add(MetricsLine(progress).ToJsonString());
            if (progress is SftEval eval)
                AnsiConsole.MarkupLineInterpolated($"[grey]step {eval.Step}: eval/loss {eval.Loss:F4}  eval/mean_token_accuracy {eval.TokenAccuracy:F3}[/]");
        }, cancellationToken);   // stopped: nothing is written or recorded

        HfExport.EnsureEmptyOrAbsent(output);   // again: training took a while, and someone may have written there since
        Checkpoints.SaveHf(model, output);
        foreach (var (from, name) in tokenizerFiles)
            File.Copy(from, Path.Combine(output, name), overwrite: false);
        File.WriteAllLines(Path.Combine(output, "metrics.jsonl"), lines);
        var weightsSha = Sha256(Path.Combine(output, "model.safetensors"));
        var fact = new PolicyFineTuned
        {
            PolicyId = NewId.NextGuid(),
            Dataset = dataset,
            DatasetSha256 = Sha256(dataset),
            BaseModel = modelPath,
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
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(output, "summary.json"), JsonSerializer.Serialize(fact, indented));
        File.WriteAllText(Path.Combine(output, HfExport.ProvenanceFile), new JsonObject
        {
            ["policy_id"] = fact.PolicyId.ToString(),
            ["weights_sha256"] = weightsSha,
            ["base_model"] = modelPath,
            ["dataset"] = dataset,
            ["dataset_sha256"] = fact.DatasetSha256,
            ["architecture"] = model.Config.Architecture,
        }.ToJsonString(indented));
        await new EventJournal(store, options).StartAsync(fact.PolicyId, fact, cancellationToken);

        AnsiConsole.MarkupLineInterpolated($"fine-tuned policy {fact.PolicyId}: {result.TrainRows} training rows, {training.Steps} steps in {clock.Elapsed.TotalSeconds:F1} s");
        if (result.Final is { } final)
            AnsiConsole.MarkupLineInterpolated($"held out {final.Rows} rows ({final.Tokens} completion tokens): loss {result.Evals[0].Loss:F4} -> {final.Loss:F4}, mean token accuracy {result.Evals[0].TokenAccuracy:F3} -> {final.TokenAccuracy:F3}");
        else
            AnsiConsole.MarkupLine("no rows held out (--eval-fraction 0): no held-out loss");
        AnsiConsole.MarkupLineInterpolated($"[grey]wrote {output} (model.safetensors sha256 {weightsSha}); name it as task.model.path[/]");
        return 0;
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

    private static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

using System.ComponentModel;
using PrefTune.Messages;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Training.FineTuning;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune sft DATA --model PATH --output DIR`: a causal LM fine-tuned on prompt/completion rows
/// (<see cref="FineTuningJob"/>) and written as a Hugging Face directory that task.model.path can name (config.json,
/// generation_config.json, model.safetensors, the tokenizer files), with metrics.jsonl, summary.json and preftune.json
/// beside it: a reference of the user's own. Recorded as <see cref="PolicyFineTuned"/> on a stream of its own.
/// </summary>
public sealed class SftCommand : AsyncCommand<SftCommand.Settings>
{
    public sealed class Settings : TrainingSettings
    {
        [CommandArgument(0, "<DATA>")]
        [Description("Prompt/completion rows, JSONL or Parquet: columns prompt and completion (or response); only the completion is trained on.")]
        public string Data { get; init; } = "";

        [CommandOption("--model <PATH>")]
        [Description("The causal LM to start from: a Hugging Face directory or a llama2.c checkpoint.")]
        public string? Model { get; init; }

        [CommandOption("--batch <B>")]
        [Description("Rows per step. Default: 32.")]
        public int Batch { get; init; } = 32;

        [CommandOption("--learning-rate <LR>")]
        [Description("Peak learning rate of the cosine schedule. Default: 2e-5 (TRL's SFT default).")]
        public double LearningRate { get; init; } = 2e-5;

        [CommandOption("--eval-fraction <F>")]
        [Description("Share of rows held out for eval/loss and eval/mean_token_accuracy, in [[0, 1). Default: 0.05.")]
        public double EvalFraction { get; init; } = 0.05;

        [CommandOption("--eval-every <N>")]
        [Description("Evaluate the held-out rows every N steps (always before the first and after the last). Default: 0, those two only.")]
        public int EvalEvery { get; init; }

        [CommandOption("--seed <S>")]
        [Description("Seeds the split and the minibatch order. Default: 0.")]
        public int Seed { get; init; }

        /// <summary>The flags as the trainer's settings, validated (a bad one named as its flag).</summary>
        public SftSettings Training()
        {
            var training = new SftSettings
            {
                Steps = Steps,
                Batch = Batch,
                LearningRate = LearningRate,
                EvalFraction = EvalFraction,
                EvalEvery = EvalEvery,
                Seed = Seed,
                Optimizer = new SftSettings().Optimizer with { WarmupSteps = WarmupSteps },
            };
            ValidateAsFlags(() => training.Validate());
            return training;
        }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so that a wrong flag or a bad row fails before the database or the weights are touched.
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new ArgumentException("--model: missing; name the causal language model to start from");
        var output = settings.OutputDirectory("the fine-tuned model");
        var training = settings.Training();
        var plan = await FineTuningJob.PlanAsync(settings.Source(settings.Data, settings.Model), training, output, cancellationToken);

        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (fact, result) = await FineTuningJob.TrainAsync(plan, new EventJournal(store, options), progress =>
        {
            if (progress is SftEval eval)
                AnsiConsole.MarkupLineInterpolated($"[grey]step {eval.Step}: eval/loss {eval.Loss:F4}  eval/mean_token_accuracy {eval.TokenAccuracy:F3}[/]");
        }, cancellationToken);   // stopped: nothing is written or recorded

        AnsiConsole.MarkupLineInterpolated($"fine-tuned policy {fact.PolicyId}: {result.TrainRows} training rows, {training.Steps} steps in {clock.Elapsed.TotalSeconds:F1} s");
        if (result.Final is { } final)
            AnsiConsole.MarkupLineInterpolated($"held out {final.Rows} rows ({final.Tokens} completion tokens): loss {result.Evals[0].Loss:F4} -> {final.Loss:F4}, mean token accuracy {result.Evals[0].TokenAccuracy:F3} -> {final.TokenAccuracy:F3}");
        else
            AnsiConsole.MarkupLine("no rows held out (--eval-fraction 0): no held-out loss");
        AnsiConsole.MarkupLineInterpolated($"[grey]wrote {output} (model.safetensors sha256 {fact.WeightsSha256}); name it as task.model.path[/]");
        return 0;
    }
}

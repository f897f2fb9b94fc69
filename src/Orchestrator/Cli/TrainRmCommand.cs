using System.ComponentModel;
using PrefTune.Messages;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Training.Rewards;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune train-rm DATASET --model PATH --output DIR`: a proxy reward model (<see cref="RewardModelTraining"/>)
/// trained on a preference-pair file (JSONL or Parquet) and written as a Hugging Face directory that reward_model.path can name
/// (config.json, model.safetensors, the tokenizer files), with metrics.jsonl, summary.json and preftune.json beside it;
/// the training is recorded as <see cref="RewardModelTrained"/> on a stream of its own.
/// </summary>
public sealed class TrainRmCommand : AsyncCommand<TrainRmCommand.Settings>
{
    public sealed class Settings : TrainingSettings
    {
        [CommandArgument(0, "<DATASET>")]
        [Description("Preference pairs, .jsonl or .parquet, in any pair format `preftune data` reads: the relabeled one (prompt, y_w, y_l, y_w_score, y_l_score, score_diff, y_ref; y_w and y_l hold prompt + response), TRL standard or conversational, AlpacaFarm, UltraFeedback, Anthropic HH.")]
        public string Dataset { get; init; } = "";

        [CommandOption("--model <PATH>")]
        [Description("The SFT model to start from: a Hugging Face directory or a llama2.c checkpoint (a causal LM, or a reward model to train further).")]
        public string? Model { get; init; }

        [CommandOption("--batch <B>")]
        [Description("Pairs per step. Default: 32 (the paper's).")]
        public int Batch { get; init; } = 32;

        [CommandOption("--learning-rate <LR>")]
        [Description("Peak learning rate of the cosine schedule. Default: 1e-5 (the paper's).")]
        public double LearningRate { get; init; } = 1e-5;

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

        /// <summary>The flags as the trainer's settings, validated (a bad one named as its flag).</summary>
        public RewardTrainingSettings Training()
        {
            if (MarginScale is not null && !Margin) throw new ArgumentException("--margin-scale: only with --margin");
            var training = new RewardTrainingSettings
            {
                Steps = Steps,
                Batch = Batch,
                LearningRate = LearningRate,
                EvalFraction = EvalFraction,
                EvalEvery = EvalEvery,
                Seed = Seed,
                MarginScale = Margin ? MarginScale ?? 1.0 : 0,
                CenterRewards = CenterRewards,
                Optimizer = new RewardTrainingSettings().Optimizer with { WarmupSteps = WarmupSteps },
            };
            ValidateAsFlags(() => training.Validate());
            return training;
        }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so that a wrong flag fails before the database or the model is touched.
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new ArgumentException("--model: missing; name the SFT model to start from");
        var output = settings.OutputDirectory("the reward model");
        var training = settings.Training();
        var plan = await RewardModelJob.PlanAsync(settings.Source(settings.Dataset, settings.Model), training, output, cancellationToken);

        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (fact, result) = await RewardModelJob.TrainAsync(plan, new EventJournal(store, options), progress =>
        {
            if (progress is RewardEval eval)
                AnsiConsole.MarkupLineInterpolated($"[grey]step {eval.Step}: eval/accuracy {eval.Accuracy:F3}  eval/margin {eval.Margin:F3}  eval/mean_reward {eval.MeanReward:F3}[/]");
        }, cancellationToken);   // stopped: nothing is written or recorded

        AnsiConsole.MarkupLineInterpolated($"reward model {fact.RewardModelId}: {result.TrainPairs} training pairs, {training.Steps} steps in {clock.Elapsed.TotalSeconds:F1} s");
        if (result.Final is { } final)
            AnsiConsole.MarkupLineInterpolated($"held out {final.Pairs} pairs: accuracy {final.Accuracy:F3}, margin {final.Margin:F3}, mean reward {final.MeanReward:F3}");
        else
            AnsiConsole.MarkupLine("no pairs held out (--eval-fraction 0): no held-out accuracy");
        AnsiConsole.MarkupLineInterpolated($"[grey]wrote {output} (model.safetensors sha256 {fact.WeightsSha256}); name it as reward_model.path[/]");
        return 0;
    }
}

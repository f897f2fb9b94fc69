using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Optimization;
using PrefTune.Training.Tasks.Length;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.Rewards;

/// <summary>One pair in the reward model's vocabulary: the ids of y_w and y_l (prompt + response each) and h.</summary>
/// <param name="Margin">h of the loss (0 without a margin).</param>
public sealed record TokenizedPair(int[] Chosen, int[] Rejected, double Margin);

/// <summary>How a proxy reward model is trained (PAPER.md, Problem 2: AdamW (0.9, 0.95), cosine schedule, batch 32, lr 1e-5).</summary>
public sealed record RewardTrainingSettings : ISupervisedSettings
{
    /// <summary>Optimizer steps, one minibatch of <see cref="Batch"/> pairs each.</summary>
    public int Steps { get; init; } = 100;
    /// <summary>Pairs per minibatch (2 x Batch sequences per forward pass).</summary>
    public int Batch { get; init; } = 32;
    /// <summary>The schedule's peak learning rate.</summary>
    public double LearningRate { get; init; } = 1e-5;
    /// <summary>Share of the pairs held out for eval/*, in [0, 1) (the paper: 1K of 20K).</summary>
    public double EvalFraction { get; init; } = 0.05;
    /// <summary>Seeds the score head, the split and the minibatch order.</summary>
    public int Seed { get; init; }
    /// <summary>h = MarginScale x score_diff; 0 trains without a margin.</summary>
    public double MarginScale { get; init; }
    /// <summary>c of the centering term c x mean((r_w + r_l)^2); 0 disables it (TRL suggests 0.01).</summary>
    public double CenterRewards { get; init; }
    /// <summary>AdamW and the schedule; clipping at 1 as HF Trainer does.</summary>
    public OptimizerSettings Optimizer { get; init; } = new() { Beta1 = 0.9, Beta2 = 0.95, Schedule = ScheduleKind.Cosine };
    /// <summary>Held-out evaluation every this many steps (and always before the first and after the last); 0: only those.</summary>
    public int EvalEvery { get; init; }

    /// <exception cref="ArgumentException">Names the first bad field.</exception>
    public RewardTrainingSettings Validate()
    {
        SupervisedLoop.Validate(this);
        if (!double.IsFinite(MarginScale)) throw new ArgumentException($"margin_scale = {MarginScale}: must be a finite number");
        if (!(double.IsFinite(CenterRewards) && CenterRewards >= 0)) throw new ArgumentException($"center_rewards = {CenterRewards}: must be at least 0");
        return this;
    }
}

/// <summary>One optimizer step on a training minibatch.</summary>
/// <param name="Accuracy">Share of the minibatch's pairs with r_w &gt; r_l (before the step).</param>
/// <param name="Margin">Mean r_w - r_l over the minibatch (before the step).</param>
public sealed record RewardTrainStep(int Step, double Loss, double Accuracy, double Margin, double LearningRate, double GradNorm);

/// <summary>The held-out pairs after <paramref name="Step"/> optimizer steps (TRL's accuracy, margin, mean_reward).</summary>
/// <param name="Accuracy">Share of held-out pairs with r_w &gt; r_l (ties count as wrong).</param>
/// <param name="Margin">Mean r_w - r_l.</param>
/// <param name="MeanReward">Mean of r_w and r_l over every held-out pair.</param>
public sealed record RewardEval(int Step, int Pairs, double Accuracy, double Margin, double MeanReward);

public sealed record RewardTrainingResult(IReadOnlyList<RewardTrainStep> Steps, IReadOnlyList<RewardEval> Evals, int TrainPairs, int EvalPairs)
{
    public RewardEval? Final => Evals.Count == 0 ? null : Evals[^1];
}

/// <summary>
/// The proxy reward model of PAPER.md's Problem 2: a sequence-classification head on the SFT (causal) model, trained
/// with the Bradley-Terry loss (<see cref="BradleyTerryLoss"/>) on preference pairs, the reward read at each text's last
/// token, as <see cref="RewardModelScorer"/> reads it later. No EOS is appended (TRL appends one): the Scorer leaves a
/// response's stop token out and scores its content, so the model is trained on what it will be asked to score.
/// </summary>
public static class RewardModelTraining
{
    /// <summary>Sequences per forward pass in evaluation: bounds the activations, as the Scorer's batches do.</summary>
    private const int EvalSequences = 32;

    /// <summary>
    /// The sequence-classification form of <paramref name="causal"/>'s architecture (LlamaForSequenceClassification or
    /// GPTNeoXForSequenceClassification, num_labels 1) with its backbone's weights copied and a fresh score head
    /// drawn, as Hugging Face's <c>_init_weights</c> does, from N(0, initializer_range^2) (config.json's, default 0.02),
    /// with a generator of its own seeded by <paramref name="seed"/>: libtorch's global generator is left alone, so
    /// the head is the same whatever ran before. pad_token_id is the model's if it has one, else its first EOS id,
    /// else 0: HF's classifier reads the last token that is not the pad, and PrefTune never appends EOS, so the last
    /// real token is never the pad. The causal model is not changed; the new model is on its device.
    /// </summary>
    public static LanguageModel FromCausalLm(LanguageModel causal, int seed)
    {
        var source = causal.Config;
        if (source.Head != ModelHead.CausalLm)
            throw new ArgumentException($"{source.Architecture} is not a causal language model: a reward model is initialised from one");
        var architecture = source.Family == ModelFamily.Llama ? "LlamaForSequenceClassification" : "GPTNeoXForSequenceClassification";
        var pad = source.PadTokenId ?? (source.EosTokenIds.Count > 0 ? source.EosTokenIds[0] : 0);
        var json = source.HfConfig.DeepClone().AsObject();
        json["architectures"] = new JsonArray(architecture);
        json["num_labels"] = 1;
        json["id2label"] = new JsonObject { ["0"] = "LABEL_0" };
        json["label2id"] = new JsonObject { ["LABEL_0"] = 0 };
        json["pad_token_id"] = pad;
        var std = json["initializer_range"] is JsonValue range ? range.GetValue<double>() : 0.02;
        var config = source with
        {
            Architecture = architecture,
            Head = ModelHead.SequenceClassification,
            NumLabels = 1,
            PadTokenId = pad,
            HfConfig = json,
        };

        var model = new LanguageModel(config);   // random weights, every one overwritten below
        var device = causal.Device;
        if (device.type != DeviceType.CPU) model = model.to(device);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var from = causal.state_dict();
        using var generator = new Generator(unchecked((ulong)seed));
        foreach (var (name, tensor) in model.state_dict())
        {
            if (name == "score.weight")
                tensor.copy_(randn(tensor.shape, generator: generator) * std);   // (num_labels, C), drawn on the CPU for every device
            else if (from.TryGetValue(name, out var weight))
                tensor.copy_(weight);
            else
                throw new InvalidOperationException($"{source.Architecture} has no tensor {name} for {architecture}'s backbone");
        }
        return model;
    }

    /// <summary>Encodes each row's y_w and y_l whole with the reward model's tokenizer; h = marginScale x score_diff.</summary>
    /// <param name="file">Names rows built in memory in messages; a row read from a file names its own line or row.</param>
    /// <exception cref="ArgumentException">A text that does not start with its prompt (the model reads the whole text, and
    /// such a pair was built wrong), encodes to nothing, or exceeds the model's context or vocabulary: file, line/row and
    /// column named.</exception>
    public static IReadOnlyList<TokenizedPair> Tokenize(IReadOnlyList<PreferenceRow> rows, ITextTokenizer tokenizer, LanguageModelConfig config, double marginScale, string file)
    {
        int[] Encode(PreferenceRow row, string where, string column, string text)
        {
            if (!text.StartsWith(row.Prompt, StringComparison.Ordinal))
                throw new ArgumentException($"{where}, column {column}: does not start with the row's prompt (y_w and y_l hold prompt + response)");
            var ids = tokenizer.Encode(text);
            if (ids.Length == 0) throw new ArgumentException($"{where}, column {column}: encodes to no token");
            if (ids.Length > config.MaxPositions)
                throw new ArgumentException($"{where}, column {column}: {ids.Length} tokens exceed {config.Architecture}'s context of {config.MaxPositions}");
            if (ids.Any(id => id < 0 || id >= config.VocabSize))
                throw new ArgumentException($"{where}, column {column}: the tokenizer gives an id outside {config.Architecture}'s vocabulary of {config.VocabSize}");
            return ids;
        }
        return rows.Select((r, i) =>
        {
            var where = r.NamedIn(file, i);
            return new TokenizedPair(Encode(r, where, "y_w", r.YW), Encode(r, where, "y_l", r.YL), marginScale * r.ScoreDiff);
        }).ToList();
    }

    /// <summary>The seeded split of the pairs (<see cref="SupervisedLoop.Split"/>).</summary>
    public static (int[] Train, int[] Eval) Split(int count, double evalFraction, int seed) =>
        SupervisedLoop.Split(count, evalFraction, seed, "pair(s)");

    /// <summary>
    /// Trains <paramref name="model"/> (a sequence classifier) in place: <see cref="RewardTrainingSettings.Steps"/> AdamW
    /// steps on the Bradley-Terry loss, in <see cref="SupervisedLoop"/> (its split, minibatch order and evaluations).
    /// <paramref name="onProgress"/> sees every step and evaluation; <paramref name="cancellationToken"/> is checked
    /// before each step (a Ctrl-C stops within one step).
    /// </summary>
    public static RewardTrainingResult Train(LanguageModel model, IReadOnlyList<TokenizedPair> pairs, RewardTrainingSettings settings,
        Action<object>? onProgress = null, CancellationToken cancellationToken = default)
    {
        settings.Validate();
        if (model.Config.Head != ModelHead.SequenceClassification)
            throw new ArgumentException($"{model.Config.Architecture} is not a sequence classifier: initialise one with {nameof(FromCausalLm)}");
        var useMargin = settings.MarginScale != 0;
        var run = SupervisedLoop.Run(model, pairs, settings, (batch, step, optimize) =>
        {
            var (chosen, rejected) = Rewards(model, batch);                                   // (B), (B)
            var margin = useMargin ? tensor(batch.Select(p => (float)p.Margin).ToArray(), device: chosen.device) : null;   // (B)
            var loss = BradleyTerryLoss.Compute(chosen, rejected, margin, settings.CenterRewards);   // ()
            var applied = optimize(loss);
            var difference = (chosen - rejected).detach();                                    // (B)
            return new RewardTrainStep(step, loss.item<float>(), difference.gt(0).to_type(ScalarType.Float32).mean().item<float>(),
                difference.mean().item<float>(), applied.LearningRate, applied.GradNorm);
        }, (heldOut, step) => Evaluate(model, heldOut, step), onProgress, cancellationToken, "pair(s)");
        return new RewardTrainingResult(run.Steps, run.Evals, run.TrainRows, run.EvalRows);
    }

    /// <summary>Accuracy, margin and mean reward over <paramref name="pairs"/>, under no_grad, in batches.</summary>
    public static RewardEval Evaluate(LanguageModel model, IReadOnlyList<TokenizedPair> pairs, int step = 0)
    {
        if (pairs.Count == 0) throw new ArgumentException("no pairs to evaluate", nameof(pairs));
        model.eval();
        using var noGrad = no_grad();
        var (correct, margin, reward) = (0.0, 0.0, 0.0);
        foreach (var chunk in pairs.Chunk(EvalSequences / 2))
        {
            using var scope = NewDisposeScope();
            var (chosen, rejected) = Rewards(model, chunk);                                   // (b), (b)
            var difference = (chosen - rejected).to_type(ScalarType.Float64);                 // (b)
            correct += difference.gt(0).sum().item<long>();
            margin += difference.sum().item<double>();
            reward += (chosen + rejected).to_type(ScalarType.Float64).sum().item<double>();
        }
        return new RewardEval(step, pairs.Count, correct / pairs.Count, margin / pairs.Count, reward / (2.0 * pairs.Count));
    }

    /// <summary>r_w and r_l of each pair: both texts in one forward pass, (B) each, with the model's gradient unless under no_grad.</summary>
    public static (Tensor Chosen, Tensor Rejected) Rewards(LanguageModel model, IReadOnlyList<TokenizedPair> pairs)
    {
        using var scope = NewDisposeScope();
        var all = Score(model, [.. pairs.Select(p => p.Chosen), .. pairs.Select(p => p.Rejected)]);   // (2B)
        var b = pairs.Count;
        return (all.narrow(0, 0, b).MoveToOuterDisposeScope(), all.narrow(0, b, b).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Label 0's score at the last token of each sequence: (N), left-padded as the Scorer pads (pad slots masked, the
    /// positions of each row those it has alone), so training and serving read the same numbers.
    /// </summary>
    public static Tensor Score(LanguageModel model, IReadOnlyList<int[]> sequences)
    {
        using var scope = NewDisposeScope();
        var (n, t) = (sequences.Count, sequences.Max(s => s.Length));
        var pad = model.Config.PadTokenId ?? 0;
        var ids = new long[n * t];
        var mask = new long[n * t];
        for (var i = 0; i < n; i++)
        {
            var offset = i * t + t - sequences[i].Length;
            Array.Fill(ids, pad, i * t, t - sequences[i].Length);
            for (var j = 0; j < sequences[i].Length; j++) (ids[offset + j], mask[offset + j]) = (sequences[i][j], 1);
        }
        var device = model.Device;
        var scores = model.Scores(tensor(ids, [n, t], device: device), tensor(mask, [n, t], device: device));   // (N, num_labels)
        return scores.select(1, 0).MoveToOuterDisposeScope();                                                  // (N)
    }
}

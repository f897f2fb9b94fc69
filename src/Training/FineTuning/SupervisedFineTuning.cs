using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Optimization;
using PrefTune.Training.Tasks.Length;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.FineTuning;

/// <summary>One row in the model's vocabulary: the prompt's ids and the completion's, the stop token last when there is one.</summary>
public sealed record TokenizedCompletion(int[] Prompt, int[] Completion)
{
    public TokenSequence Sequence => new(Prompt, Completion);
}

/// <summary>How a policy is fine-tuned on completions: AdamW (0.9, 0.95) with a cosine schedule and clipping at 1, as
/// the reward model is trained (<see cref="Rewards.RewardTrainingSettings"/>), lr 2e-5 as TRL's SFTConfig.</summary>
public sealed record SftSettings : ISupervisedSettings
{
    /// <summary>Optimizer steps, one minibatch of <see cref="Batch"/> rows each.</summary>
    public int Steps { get; init; } = 100;
    /// <summary>Rows (sequences) per minibatch.</summary>
    public int Batch { get; init; } = 32;
    /// <summary>The schedule's peak learning rate.</summary>
    public double LearningRate { get; init; } = 2e-5;
    /// <summary>Share of the rows held out for eval/*, in [0, 1).</summary>
    public double EvalFraction { get; init; } = 0.05;
    /// <summary>Seeds the split and the minibatch order (the weights start from the base model: nothing else is drawn).</summary>
    public int Seed { get; init; }
    public OptimizerSettings Optimizer { get; init; } = new() { Beta1 = 0.9, Beta2 = 0.95, Schedule = ScheduleKind.Cosine };
    /// <summary>Held-out evaluation every this many steps (and always before the first and after the last); 0: only those.</summary>
    public int EvalEvery { get; init; }

    /// <exception cref="ArgumentException">Names the first bad field.</exception>
    public SftSettings Validate()
    {
        SupervisedLoop.Validate(this);
        return this;
    }
}

/// <summary>One optimizer step on a training minibatch; loss and accuracy are those before the step.</summary>
/// <param name="TokenAccuracy">Share of the minibatch's completion tokens that are the model's argmax (TRL's mean_token_accuracy).</param>
public sealed record SftTrainStep(int Step, double Loss, double TokenAccuracy, double LearningRate, double GradNorm);

/// <summary>The held-out rows after <paramref name="Step"/> optimizer steps: the loss and accuracy per completion token.</summary>
public sealed record SftEval(int Step, int Rows, long Tokens, double Loss, double TokenAccuracy);

public sealed record SftResult(IReadOnlyList<SftTrainStep> Steps, IReadOnlyList<SftEval> Evals, int TrainRows, int EvalRows)
{
    public SftEval? Final => Evals.Count == 0 ? null : Evals[^1];
}

/// <summary>The completion-only loss of a packed batch, summed (not averaged) so that batches can be pooled.</summary>
/// <param name="Nll">() sum over completion tokens of -log pi(y_t | x, y_&lt;t), with the logits' gradient.</param>
/// <param name="Correct">() completion tokens that are the argmax of their logits (no gradient).</param>
/// <param name="Tokens">Completion tokens counted.</param>
public sealed record CompletionNll(Tensor Nll, Tensor Correct, long Tokens)
{
    /// <summary>The mean over completion tokens, TRL SFTTrainer's completion-only loss.</summary>
    public Tensor Mean => Nll / Tokens;
}

/// <summary>
/// Supervised fine-tuning of a causal LM on prompt/completion rows (`preftune sft`): the reference policy of PAPER.md is
/// such an SFT model, and this is how a user makes one of their own. The loss is the negative log-likelihood of the
/// completion tokens alone (the prompt's are context, masked out), averaged over the batch's completion tokens, as TRL's
/// SFTTrainer does with completion_only_loss.
/// </summary>
public static class SupervisedFineTuning
{
    /// <summary>Sequences per forward pass in evaluation: bounds the activations.</summary>
    private const int EvalSequences = 32;

    /// <summary>
    /// The token appended to each completion: the first of the model's stop ids (what <see cref="TextGeneration"/> and
    /// the Sampler end a response on, <see cref="Policies.LanguageModelFamily.StopIdsOf"/>), else its first eos id, else
    /// none. Without it the model is never shown where a response ends and, used as a reference, would run on to
    /// max_new_tokens; TRL appends EOS for the same reason.
    /// </summary>
    public static int? StopIdOf(IReadOnlyList<int> stopIds, LanguageModelConfig config) =>
        stopIds.Count > 0 ? stopIds[0] : config.EosTokenIds.Count > 0 ? config.EosTokenIds[0] : null;

    /// <summary>
    /// Encodes each row: the prompt's ids are encode(prompt); the completion's are those of encode(prompt + completion)
    /// after the prompt's (the ids the model would read after that prompt; <see cref="PreferenceRollouts"/> does the same
    /// for responses), then <paramref name="stopId"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A prompt that encodes to nothing, a row with nothing to train on, or one longer
    /// than the model's context or outside its vocabulary (file, line or row, and column named).</exception>
    public static IReadOnlyList<TokenizedCompletion> Tokenize(IReadOnlyList<CompletionRow> rows, ITextTokenizer tokenizer, LanguageModelConfig config, int? stopId)
    {
        var result = new List<TokenizedCompletion>(rows.Count);
        foreach (var row in rows)
        {
            var prompt = tokenizer.Encode(row.Prompt);
            if (prompt.Length == 0) throw new ArgumentException($"{row.Where}, column {CompletionDataFiles.PromptColumn}: encodes to no tokens (the first completion token needs one to be predicted from)");
            var response = PreferenceRollouts.ResponseIds(row.Prompt + row.Completion, row.Prompt, prompt, tokenizer, $"{row.Where}, column {row.CompletionColumn}");
            int[] completion = stopId is { } stop ? [.. response, stop] : response;
            if (completion.Length == 0) throw new ArgumentException($"{row.Where}, column {row.CompletionColumn}: empty, and the model has no stop token to learn instead");
            if (prompt.Length + completion.Length > config.MaxPositions)
                throw new ArgumentException($"{row.Where}, column {row.CompletionColumn}: prompt and completion hold {prompt.Length + completion.Length} tokens "
                    + $"(the stop token included), more than {config.Architecture}'s context of {config.MaxPositions}");
            if (prompt.Concat(completion).Any(id => id < 0 || id >= config.VocabSize))
                throw new ArgumentException($"{row.Where}: the tokenizer gives an id outside {config.Architecture}'s vocabulary of {config.VocabSize}");
            result.Add(new TokenizedCompletion(prompt, completion));
        }
        return result;
    }

    /// <summary>The seeded split of the rows (<see cref="SupervisedLoop.Split"/>).</summary>
    public static (int[] Train, int[] Eval) Split(int count, double evalFraction, int seed) =>
        SupervisedLoop.Split(count, evalFraction, seed, "row(s)");

    /// <summary>
    /// The completion-only NLL from logits over a packed batch (<see cref="SequenceLogProbs.Pack"/>: prompts left-padded
    /// into the first P columns, completions right-padded after): the logits at column P + t - 1 predict completion token
    /// t; every prompt column but the last (which predicts the first completion token) and every pad is never read.
    /// </summary>
    public static CompletionNll Loss(Tensor logits, PackedSequences batch)
    {
        using var scope = NewDisposeScope();
        var (p, r) = (batch.PromptColumns, batch.ResponseColumns);
        var scores = SequenceLogProbs.FromLogits(logits, batch, tokens: true);                 // Tokens (N, R), 0 on pads
        var nll = -scores.Tokens!.sum();                                                        // ()
        using var noGrad = no_grad();
        var predicted = logits.narrow(1, p - 1, r).argmax(-1);                                  // (N, R)
        var targets = batch.Ids.narrow(1, p, r);                                                // (N, R)
        var correct = (predicted.eq(targets).to_type(ScalarType.Float32) * batch.ResponseMask).sum();   // ()
        var tokens = (long)batch.ResponseMask.sum().item<float>();
        return new CompletionNll(nll.MoveToOuterDisposeScope(), correct.MoveToOuterDisposeScope(), tokens);
    }

    /// <summary>The loss of <paramref name="rows"/> under <paramref name="model"/>, with its gradient unless under no_grad.</summary>
    public static CompletionNll Loss(LanguageModel model, IReadOnlyList<TokenizedCompletion> rows)
    {
        using var scope = NewDisposeScope();
        var batch = SequenceLogProbs.Pack(model, rows.Select(r => r.Sequence).ToList(), PadId(model));
        var loss = Loss(model.forward(batch.Ids, batch.AttentionMask), batch);                 // logits (N, P + R, V)
        return new CompletionNll(loss.Nll.MoveToOuterDisposeScope(), loss.Correct.MoveToOuterDisposeScope(), loss.Tokens);
    }

    private static int PadId(LanguageModel model) => model.Config.PadTokenId is { } pad && pad >= 0 && pad < model.Config.VocabSize ? pad : 0;

    /// <summary>
    /// Trains the causal LM <paramref name="model"/> in place: <see cref="SftSettings.Steps"/> AdamW steps on the
    /// completion-only loss, in <see cref="SupervisedLoop"/> (its split, minibatch order and evaluations).
    /// <paramref name="onProgress"/> sees every step and evaluation; the token is checked before each step.
    /// </summary>
    public static SftResult Train(LanguageModel model, IReadOnlyList<TokenizedCompletion> rows, SftSettings settings,
        Action<object>? onProgress = null, CancellationToken cancellationToken = default)
    {
        settings.Validate();
        if (model.Config.Head != ModelHead.CausalLm)
            throw new ArgumentException($"{model.Config.Architecture} is not a causal language model: sft trains one");
        var run = SupervisedLoop.Run(model, rows, settings, (batch, step, optimize) =>
        {
            var loss = Loss(model, batch);
            var mean = loss.Mean;                                                               // ()
            var applied = optimize(mean);
            return new SftTrainStep(step, mean.item<float>(), loss.Correct.item<float>() / loss.Tokens, applied.LearningRate, applied.GradNorm);
        }, (heldOut, step) => Evaluate(model, heldOut, step), onProgress, cancellationToken, "row(s)");
        return new SftResult(run.Steps, run.Evals, run.TrainRows, run.EvalRows);
    }

    /// <summary>Loss and token accuracy per completion token over all of <paramref name="rows"/> (pooled, not a mean of
    /// batch means), under no_grad, in batches.</summary>
    public static SftEval Evaluate(LanguageModel model, IReadOnlyList<TokenizedCompletion> rows, int step = 0)
    {
        if (rows.Count == 0) throw new ArgumentException("no rows to evaluate", nameof(rows));
        model.eval();
        using var noGrad = no_grad();
        var (nll, correct, tokens) = (0.0, 0.0, 0L);
        foreach (var chunk in rows.Chunk(EvalSequences))
        {
            using var scope = NewDisposeScope();
            var loss = Loss(model, chunk);
            nll += loss.Nll.to_type(ScalarType.Float64).item<double>();
            correct += loss.Correct.item<float>();
            tokens += loss.Tokens;
        }
        return new SftEval(step, rows.Count, tokens, nll / tokens, correct / tokens);
    }
}

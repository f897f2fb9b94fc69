using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using static TorchSharp.torch;

namespace PrefTune.Training.Optimization;

/// <summary>What <see cref="SupervisedLoop"/> reads of a trainer's settings (<see cref="FineTuning.SftSettings"/>,
/// <see cref="Rewards.RewardTrainingSettings"/>): the fields every supervised trainer has, validated by its own record.</summary>
public interface ISupervisedSettings
{
    int Steps { get; }
    int Batch { get; }
    double LearningRate { get; }
    double EvalFraction { get; }
    int Seed { get; }
    OptimizerSettings Optimizer { get; }
    int EvalEvery { get; }
}

/// <summary>What the loop did: every step's record, every evaluation's, and how the rows were split.</summary>
public sealed record SupervisedRun<TStep, TEval>(IReadOnlyList<TStep> Steps, IReadOnlyList<TEval> Evals, int TrainRows, int EvalRows);

/// <summary>
/// The training loop that supervised fine-tuning and reward-model training share: a seeded held-out split, minibatches
/// drawn in epochs (each a fresh seeded permutation of the training rows), AdamW steps (<see cref="PolicyOptimizer"/>)
/// and a held-out evaluation before the first step, after the last and every eval_every. A trainer brings only its
/// loss and its metrics; the random numbers drawn, and their order, are the loop's alone, so that both trainers split
/// and shuffle alike and a seed means the same thing in each.
/// </summary>
public static class SupervisedLoop
{
    /// <summary>Checks the fields the loop reads; a trainer's settings check theirs beside it.</summary>
    /// <exception cref="ArgumentException">Names the first bad field.</exception>
    public static void Validate(ISupervisedSettings settings)
    {
        if (settings.Steps < 1) throw new ArgumentException($"steps = {settings.Steps}: must be at least 1");
        if (settings.Batch < 1) throw new ArgumentException($"batch = {settings.Batch}: must be at least 1");
        if (!(double.IsFinite(settings.LearningRate) && settings.LearningRate > 0)) throw new ArgumentException($"learning_rate = {settings.LearningRate}: must be positive");
        if (!(settings.EvalFraction is >= 0 and < 1)) throw new ArgumentException($"eval_fraction = {settings.EvalFraction}: must lie in [0, 1)");
        if (settings.EvalEvery < 0) throw new ArgumentException($"eval_every = {settings.EvalEvery}: must be at least 0");
        settings.Optimizer.Validate();
    }

    /// <summary>The seeded split: a permutation (System.Random(seed), stable across .NET versions for a given seed), the
    /// first round(fraction x N) held out (at least 1 when the fraction is positive, never all; none of a single row).</summary>
    /// <param name="noun">What a row is in the message about too few of them: "row(s)", "pair(s)".</param>
    public static (int[] Train, int[] Eval) Split(int count, double evalFraction, int seed, string noun = "row(s)")
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        var held = evalFraction <= 0 || count < 2 ? 0 : Math.Clamp((int)Math.Round(evalFraction * count), 1, count - 1);
        if (count - held < 1) throw new ArgumentException($"{count} {noun}: none left to train on after holding out {held}");
        return (order[held..], order[..held]);
    }

    /// <summary>
    /// Trains <paramref name="model"/> in place for <see cref="ISupervisedSettings.Steps"/> steps of
    /// <see cref="ISupervisedSettings.Batch"/> rows each (a short last minibatch of an epoch is filled from the next, so
    /// every step sees Batch rows). Each step runs in a dispose scope of its own. Deterministic for a seed at a fixed
    /// thread count. <paramref name="onProgress"/> sees every step and evaluation; the token is checked before each step.
    /// </summary>
    /// <param name="step">One step's work on its minibatch: computes the loss, hands it to the optimize function (which
    /// back-propagates it and steps, returning what the step did) and returns the step's record.</param>
    /// <param name="evaluate">The held-out rows' metrics after the given number of steps (called only when rows are held out).</param>
    /// <param name="noun">What a row is, for <see cref="Split"/>'s message.</param>
    public static SupervisedRun<TStep, TEval> Run<TRow, TStep, TEval>(LanguageModel model, IReadOnlyList<TRow> rows, ISupervisedSettings settings,
        Func<IReadOnlyList<TRow>, int, Func<Tensor, OptimizerStep>, TStep> step, Func<IReadOnlyList<TRow>, int, TEval> evaluate,
        Action<object>? onProgress, CancellationToken cancellationToken, string noun = "row(s)")
        where TStep : notnull where TEval : notnull
    {
        var (train, eval) = Split(rows.Count, settings.EvalFraction, settings.Seed, noun);
        var heldOut = eval.Select(i => rows[i]).ToList();
        var steps = new List<TStep>();
        var evals = new List<TEval>();
        void Evaluated(int at)
        {
            if (heldOut.Count == 0) return;
            var result = evaluate(heldOut, at);
            evals.Add(result);
            onProgress?.Invoke(result);
        }

        var order = new Random(unchecked(settings.Seed * 7919 + 1));   // another stream than the split's
        var queue = new Queue<int>();
        using var optimizer = new PolicyOptimizer(model.parameters(), settings.Optimizer, settings.LearningRate, settings.Steps);
        OptimizerStep Optimize(Tensor loss)
        {
            loss.backward();
            return optimizer.Step();
        }
        Evaluated(0);
        model.train();
        for (var number = 1; number <= settings.Steps; number++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = new List<TRow>(settings.Batch);
            while (batch.Count < settings.Batch)
            {
                if (queue.Count == 0)
                {
                    var epoch = (int[])train.Clone();
                    order.Shuffle(epoch);
                    foreach (var i in epoch) queue.Enqueue(i);
                }
                batch.Add(rows[queue.Dequeue()]);
            }

            using (var scope = NewDisposeScope())
            {
                optimizer.ZeroGrad();
                var record = step(batch, number, Optimize);
                steps.Add(record);
                onProgress?.Invoke(record);
            }
            if (number == settings.Steps || (settings.EvalEvery > 0 && number % settings.EvalEvery == 0))
            {
                Evaluated(number);
                model.train();
            }
        }
        model.eval();
        return new SupervisedRun<TStep, TEval>(steps, evals, train.Length, eval.Length);
    }
}

using PrefTune.Messages;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>A range or consistency check on a block; <see cref="Keys"/> are the fields it concerns, the first one reported.</summary>
internal sealed record Rule<T>(string[] Keys, Func<T, bool> IsBroken, Func<T, string> Problem, string Allowed);

/// <summary>The value checks of an experiment file, separate from reading it.</summary>
internal static class ExperimentRules
{
    public static readonly Rule<LoopSpec>[] Loop =
    [
        AtLeast<LoopSpec>("B", l => l.B, 1),
        AtLeast<LoopSpec>("C", l => l.C, 1),
        AtLeast<LoopSpec>("M", l => l.M, 1),
        AtLeast<LoopSpec>("T", l => l.T, 1),
        AtLeast<LoopSpec>("gradient_steps", l => l.GradientSteps, 1),
        AtLeast<LoopSpec>("eval_every", l => l.EvalEvery, 1),
        AtLeast<LoopSpec>("eval_samples", l => l.EvalSamples, 1),
        AtLeast<LoopSpec>("dataset_prompts", l => l.DatasetPrompts, 1),
        AtLeast<LoopSpec>("dataset_responses", l => l.DatasetResponses, 1),
        AtLeast<LoopSpec>("max_staleness", l => l.MaxStaleness, 0),
        AtLeast<LoopSpec>("checkpoint_every", l => l.CheckpointEvery, 1),
        Positive<LoopSpec>("learning_rate", l => l.LearningRate),
        Positive<LoopSpec>("temperature", l => l.Temperature),
        MultipleOf("B", l => l.B, "C", l => l.C,
            "each iteration samples B/C prompts with C responses each (Algorithm 1, steps 1-2)"),
        MultipleOf("M", l => l.M, "C", l => l.C,
            "a minibatch holds whole prompts, each with its C responses (Algorithm 1, step 4)"),
        MultipleOf("B", l => l.B, "M", l => l.M,
            "each of the T passes splits D (|D| = B) into B/M minibatches of M, one gradient step each (Algorithm 1, step 4)"),
    ];

    /// <summary>Extra checks when a method trains on D_pref (offline data); reported at the method's <c>data</c> key.</summary>
    public static readonly Rule<LoopSpec>[] Offline =
    [
        new(["dataset_responses"], l => l.DatasetResponses < 2,
            l => $"offline data needs dataset_responses >= 2 to form preference pairs; got {l.DatasetResponses}",
            "dataset_responses >= 2"),
        new(["C"], l => l.C != l.DatasetResponses,
            l => $"offline data needs C = dataset_responses (each prompt of D_pref brings its N responses); got C = {l.C}, dataset_responses = {l.DatasetResponses}",
            "C equal to dataset_responses"),
    ];

    public static readonly Rule<BanditSpec>[] Bandit =
    [
        AtLeast<BanditSpec>("actions", b => b.Actions, 2),
        Positive<BanditSpec>("reward_width", b => b.RewardWidth),
        Positive<BanditSpec>("data_scale", b => b.DataScale),
        AtLeast<BanditSpec>("context_size", b => b.ContextSize, 1),
        AtLeast<BanditSpec>("hidden", b => b.Hidden, 1),
        AtLeast<BanditSpec>("prompts", b => b.Prompts, 1),
        AtLeast<BanditSpec>("reference_steps", b => b.ReferenceSteps, 0),
        Positive<BanditSpec>("reference_learning_rate", b => b.ReferenceLearningRate),
        new(["policy"], b => !Training.Tasks.Bandit.BanditTask.Policies.Contains(b.Policy),
            b => $"unknown policy '{b.Policy}'", string.Join(", ", Training.Tasks.Bandit.BanditTask.Policies)),
        AtLeast<BanditSpec>("response_length", b => b.ResponseLength, 1),
        AtLeast<BanditSpec>("layers", b => b.Layers, 1),
        AtLeast<BanditSpec>("heads", b => b.Heads, 1),
        AtLeast<BanditSpec>("width", b => b.Width, 1),
    ];

    /// <summary>Reports every broken rule; <paramref name="pathOf"/> turns a rule's keys into the field path to blame.</summary>
    public static void Check<T>(T value, IEnumerable<Rule<T>> rules, Func<string[], string> pathOf, DocumentReader reader)
    {
        foreach (var rule in rules.Where(r => r.IsBroken(value)))
            reader.Add(pathOf(rule.Keys), rule.Problem(value), rule.Allowed);
    }

    private static Rule<T> AtLeast<T>(string key, Func<T, int> get, int min) =>
        new([key], x => get(x) < min, x => $"{key} = {get(x)} is below {min}", $"integers >= {min}");

    private static Rule<T> Positive<T>(string key, Func<T, double> get) =>
        new([key], x => !(get(x) > 0), x => $"{key} = {get(x)} is not positive", "numbers > 0");

    private static Rule<LoopSpec> MultipleOf(string key, Func<LoopSpec, int> get, string of, Func<LoopSpec, int> getOf,
        string why) =>
        new([key, of], l => get(l) >= 1 && getOf(l) >= 1 && get(l) % getOf(l) != 0,
            l => $"{key} = {get(l)} is not a multiple of {of} = {getOf(l)}",
            $"{key} a multiple of {of}: {why}");
}

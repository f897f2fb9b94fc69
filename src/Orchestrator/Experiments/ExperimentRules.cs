using System.Linq.Expressions;
using PrefTune.Messages;
using PrefTune.Training.Methods;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>A range or consistency check on a block; <see cref="Keys"/> are the fields it concerns, the first one reported.</summary>
internal sealed record Rule<T>(string[] Keys, Func<T, bool> IsBroken, Func<T, string> Problem, string Allowed);

/// <summary>The value checks of an experiment file, separate from reading it.</summary>
internal static class ExperimentRules
{
    public static readonly Rule<LoopSpec>[] Loop =
    [
        AtLeast<LoopSpec>(l => l.B, 1),
        AtLeast<LoopSpec>(l => l.C, 1),
        AtLeast<LoopSpec>(l => l.M, 1),
        AtLeast<LoopSpec>(l => l.T, 1),
        AtLeast<LoopSpec>(l => l.GradientSteps, 1),
        AtLeast<LoopSpec>(l => l.EvalEvery, 1),
        AtLeast<LoopSpec>(l => l.EvalSamples, 1),
        AtLeast<LoopSpec>(l => l.DatasetPrompts, 1),
        AtLeast<LoopSpec>(l => l.DatasetResponses, 1),
        AtLeast<LoopSpec>(l => l.MaxStaleness, 0),
        AtLeast<LoopSpec>(l => l.CheckpointEvery, 1),
        Positive<LoopSpec>(l => l.LearningRate),
        Positive<LoopSpec>(l => l.Temperature),
        MultipleOf(l => l.B, l => l.C,
            "each iteration samples B/C prompts with C responses each (Algorithm 1, steps 1-2)"),
        MultipleOf(l => l.M, l => l.C,
            "a minibatch holds whole prompts, each with its C responses (Algorithm 1, step 4)"),
        MultipleOf(l => l.B, l => l.M,
            "each of the T passes splits D (|D| = B) into B/M minibatches of M, one gradient step each (Algorithm 1, step 4)"),
        // The driver counts T * B sample uses per iteration in an int; beyond that it would wrap to a negative count.
        new(["T", "B"], l => (long)l.T * l.B > int.MaxValue,
            l => $"T * B = {(long)l.T * l.B} sample uses per iteration is more than {int.MaxValue}",
            $"T * B at most {int.MaxValue}"),
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
        AtLeast<BanditSpec>(b => b.Actions, 2),
        new(["reward_center", "actions"], b => b.Actions >= 2 && !(b.RewardCenter >= 0 && b.RewardCenter <= b.Actions - 1),
            b => $"reward_center = {b.RewardCenter} is outside the actions 0..{b.Actions - 1}: the gold reward would be about 0 for every action",
            "numbers from 0 to actions - 1 (the action where the gold reward peaks)"),
        Positive<BanditSpec>(b => b.RewardWidth),
        Positive<BanditSpec>(b => b.DataScale),
        AtLeast<BanditSpec>(b => b.ContextSize, 1),
        AtLeast<BanditSpec>(b => b.Hidden, 1),
        AtLeast<BanditSpec>(b => b.Prompts, 1),
        AtLeast<BanditSpec>(b => b.ReferenceSteps, 0),
        Positive<BanditSpec>(b => b.ReferenceLearningRate),
        new(["policy"], b => !Training.Tasks.Bandit.BanditTask.Policies.Contains(b.Policy),
            b => $"unknown policy '{b.Policy}'", string.Join(", ", Training.Tasks.Bandit.BanditTask.Policies)),
        AtLeast<BanditSpec>(b => b.ResponseLength, 1),
        AtLeast<BanditSpec>(b => b.Layers, 1),
        AtLeast<BanditSpec>(b => b.Heads, 1),
        AtLeast<BanditSpec>(b => b.Width, 1),
        new(["prompts", "actions"], b => b.Policy == "gpt" && b.Prompts > b.Actions,
            b => $"prompts = {b.Prompts} is more than actions = {b.Actions}: a gpt prompt is one token of the action vocabulary",
            "prompts <= actions with policy: gpt"),
        new(["width", "heads"], b => b.Policy == "gpt" && b.Width >= 1 && b.Heads >= 1 && b.Width % b.Heads != 0,
            b => $"width = {b.Width} is not a multiple of heads = {b.Heads}", "width a multiple of heads: each head takes width/heads dimensions"),
    ];

    /// <summary>Read once: what this machine has does not change while a file is read, and every run is held to the same figure.</summary>
    private static readonly Lazy<(double Bytes, string Source)> Available = new(MemoryLimit.Available);

    /// <summary>
    /// The run's memory, estimated from its task and loop (<see cref="MemoryLimit"/>), against what this machine has;
    /// reported at the first field of the largest term, naming the estimate, the limit and every term's fields.
    /// Only for a loop and task that break no other rule (a negative B has no size).
    /// </summary>
    public static void CheckMemory(TaskSpec task, LoopSpec loop, DataSource data, Func<string, string> loopPath,
        Func<string, string> taskPath, DocumentReader reader)
    {
        if (Oversized(task, loop, data) is not { } terms)
            return;
        var (available, source) = Available.Value;
        var total = terms.Sum(t => t.Bytes);
        var largest = terms.MaxBy(t => t.Bytes)!;
        // Blame the loop's count when the term has one (B, M), else the task's largest size (hidden = 10^6).
        var path = largest.LoopFields.Count > 0 ? loopPath(largest.LoopFields[0].Key) : taskPath(largest.TaskFields.MaxBy(f => f.Value)!.Key);
        var fields = largest.LoopFields.Select(f => loopPath(f.Key)).Concat(largest.TaskFields.Select(f => taskPath(f.Key)));
        reader.Add(path,
            $"the run would hold about {MemoryLimit.Format(total)}, more than the {MemoryLimit.Format(available)} of memory available ({source}); "
            + $"estimated from the spec: {string.Join("; ", terms)}",
            $"sizes whose estimate fits in {MemoryLimit.Format(available)}; what sets the {largest.Name}: {string.Join(", ", fields.Distinct())}");
    }

    /// <summary>The estimate's terms when the run would not fit in the memory available; null when it fits or has no size.</summary>
    public static IReadOnlyList<MemoryTerm>? Oversized(TaskSpec task, LoopSpec loop, DataSource data)
    {
        if (Loop.Any(r => r.IsBroken(loop)) || task.Kind == "bandit" && Bandit.Any(r => r.IsBroken(task.Bandit ?? new BanditSpec())))
            return null;
        return MemoryLimit.Estimate(task, loop, data) is { } terms && terms.Sum(t => t.Bytes) > Available.Value.Bytes ? terms : null;
    }

    /// <summary>
    /// A method's hyperparameter values, checked by constructing its loss: the ranges are written once, in each
    /// method's own file. Reported at the parameter <paramref name="pathOf"/> names.
    /// </summary>
    public static void CheckParameters(string method, IReadOnlyDictionary<string, double> parameters, Func<string, string> pathOf, DocumentReader reader)
    {
        try
        {
            MethodRegistry.Create(method, parameters);
        }
        catch (ArgumentOutOfRangeException e)
        {
            // "dpo: beta = -1 is invalid; must be positive (Parameter 'beta') ...": the rule without the method and the runtime's suffix
            var message = e.Message.Split(" (Parameter '")[0];
            var rule = message[(message.IndexOf(": ", StringComparison.Ordinal) + 2)..].Split("; ", 2);
            reader.Add(pathOf(e.ParamName ?? ""), rule[0], rule.Length > 1 ? rule[1] : null);
        }
    }

    /// <summary>Reports every broken rule; <paramref name="pathOf"/> turns a rule's keys into the field path to blame.</summary>
    public static void Check<T>(T value, IEnumerable<Rule<T>> rules, Func<string[], string> pathOf, DocumentReader reader)
    {
        foreach (var rule in rules.Where(r => r.IsBroken(value)))
            reader.Add(pathOf(rule.Keys), rule.Problem(value), rule.Allowed);
    }

    // The key a rule blames is the record property it reads (Field.KeyOf), so a field's name is written once, in its record.
    private static Rule<T> AtLeast<T>(Expression<Func<T, int>> property, int min)
    {
        var (key, get) = (Field.KeyOf(property), property.Compile());
        return new([key], x => get(x) < min, x => $"{key} = {get(x)} is below {min}", $"integers >= {min}");
    }

    private static Rule<T> Positive<T>(Expression<Func<T, double>> property)
    {
        var (key, get) = (Field.KeyOf(property), property.Compile());
        return new([key], x => !(get(x) > 0), x => $"{key} = {get(x)} is not positive", "numbers > 0");
    }

    private static Rule<LoopSpec> MultipleOf(Expression<Func<LoopSpec, int>> property, Expression<Func<LoopSpec, int>> ofProperty, string why)
    {
        var (key, get, of, getOf) = (Field.KeyOf(property), property.Compile(), Field.KeyOf(ofProperty), ofProperty.Compile());
        return new([key, of], l => get(l) >= 1 && getOf(l) >= 1 && get(l) % getOf(l) != 0,
            l => $"{key} = {get(l)} is not a multiple of {of} = {getOf(l)}",
            $"{key} a multiple of {of}: {why}");
    }
}

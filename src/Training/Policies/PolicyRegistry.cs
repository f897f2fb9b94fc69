using PrefTune.Messages;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Bandit;

namespace PrefTune.Training.Policies;

/// <summary>One registered policy family: its name in the experiment file, the task kind it answers, how it is built.</summary>
public sealed record PolicyKind
{
    public required string Name { get; init; }
    public required string Summary { get; init; }
    /// <summary>The <see cref="TaskRegistry"/> kinds whose prompts this family answers.</summary>
    public required IReadOnlyList<string> Tasks { get; init; }
    /// <summary>The family for a task spec (its sizes read from the spec).</summary>
    public required Func<TaskSpec, IPolicyFamily> Create { get; init; }
    /// <summary>Whether it scores responses token by token with a value head (<see cref="IPolicyFamily.ScoreTokens"/>), as
    /// token-level methods need.</summary>
    public bool ScoresTokens { get; init; }
    /// <summary>The memory its policy and samples take, from the spec alone (nothing is built); null when the spec cannot say.</summary>
    public required Func<TaskSpec, TaskFootprint?> Footprint { get; init; }
}

/// <summary>Every policy family PrefTune knows. Adding one: a class with a Descriptor, one line here.</summary>
public static class PolicyRegistry
{
    public static IReadOnlyList<PolicyKind> All { get; } =
    [
        CategoricalBandit.Descriptor,
        GptBandit.Descriptor,
        LanguageModelFamily.Descriptor,
    ];

    /// <summary>The families that answer <paramref name="task"/>'s prompts.</summary>
    public static IReadOnlyList<string> NamesFor(string task) => All.Where(p => p.Tasks.Contains(task)).Select(p => p.Name).ToList();

    /// <exception cref="ArgumentException">Unknown name (the message names the field and lists the known ones).</exception>
    public static PolicyKind Get(string task, string name) =>
        All.FirstOrDefault(p => p.Tasks.Contains(task) && p.Name == name)
        ?? throw new ArgumentException($"task.{task}.policy: unknown policy '{name}'; known: {string.Join(", ", NamesFor(task))}", nameof(name));
}

using PrefTune.Messages;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks.Bandit;

namespace PrefTune.Training.Tasks;

/// <summary>One registered task kind: its name (task.kind), how it is built, and which policy kind a spec names.</summary>
public sealed record TaskKind
{
    public required string Name { get; init; }
    public required string Summary { get; init; }
    /// <summary>The task with the policy family the spec names (<see cref="PolicyOf"/>, a <see cref="PolicyRegistry"/> kind).</summary>
    public required Func<TaskSpec, IPreferenceTask> Create { get; init; }
    /// <summary>The name of the policy kind a spec asks for.</summary>
    public required Func<TaskSpec, string> PolicyOf { get; init; }
}

/// <summary>Every task kind PrefTune knows. Adding one: a class with a Descriptor, one line here.</summary>
public static class TaskRegistry
{
    public static IReadOnlyList<TaskKind> All { get; } =
    [
        BanditTask.Descriptor,
        Length.LengthTask.Descriptor,
        Preference.PreferenceTask.Descriptor,
    ];

    public static TaskKind? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}

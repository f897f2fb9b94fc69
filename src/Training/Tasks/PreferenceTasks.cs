using PrefTune.Messages;
using PrefTune.Training.Tasks.Bandit;

namespace PrefTune.Training.Tasks;

/// <summary>Builds the task a <see cref="TaskSpec"/> names. A new task kind is one case here.</summary>
public static class PreferenceTasks
{
    /// <summary>Known values of <see cref="TaskSpec.Kind"/>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["bandit"];

    /// <exception cref="ArgumentException">Unknown task.kind or an invalid task block (the message names the field).</exception>
    public static IPreferenceTask Create(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Kind switch
        {
            "bandit" => new BanditTask(spec),
            _ => throw new ArgumentException($"task.kind: unknown task kind '{spec.Kind}'; known: {string.Join(", ", Kinds)}", nameof(spec)),
        };
    }

    /// <summary>The memory a task's policy and samples take, from the spec alone (see <see cref="TaskFootprint"/>); null for an unknown kind.</summary>
    public static TaskFootprint? Footprint(TaskSpec spec) => spec.Kind switch
    {
        "bandit" => BanditTask.Footprint(spec.Bandit ?? new BanditSpec()),
        _ => null,
    };
}

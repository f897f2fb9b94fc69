using PrefTune.Messages;
using PrefTune.Training.Policies;

namespace PrefTune.Training.Tasks;

/// <summary>Builds the task a <see cref="TaskSpec"/> names, from <see cref="TaskRegistry"/> and <see cref="PolicyRegistry"/>.</summary>
public static class PreferenceTasks
{
    /// <summary>Known values of <see cref="TaskSpec.Kind"/>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = TaskRegistry.All.Select(t => t.Name).ToList();

    /// <exception cref="ArgumentException">Unknown task.kind or an invalid task block (the message names the field).</exception>
    public static IPreferenceTask Create(TaskSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var kind = TaskRegistry.Find(spec.Kind)
            ?? throw new ArgumentException($"task.kind: unknown task kind '{spec.Kind}'; known: {string.Join(", ", Kinds)}", nameof(spec));
        return kind.Create(spec);
    }

    /// <summary>The pairs file offline methods read as D_pref (task.length.dataset, task.preference.dataset), or null when
    /// D_pref is sampled from the reference.</summary>
    public static string? PairsFile(TaskSpec spec) =>
        spec.Length is { Dataset: not "" } length ? length.Dataset
        : spec.Preference is { Dataset: not "" } preference ? preference.Dataset
        : null;

    /// <summary>The memory a task's policy and samples take, from the spec alone (see <see cref="TaskFootprint"/>); null for an
    /// unknown task or policy kind (reported by the experiment's rules).</summary>
    public static TaskFootprint? Footprint(TaskSpec spec) =>
        TaskRegistry.Find(spec.Kind) is { } kind && PolicyRegistry.All.FirstOrDefault(p => p.Tasks.Contains(kind.Name) && p.Name == kind.PolicyOf(spec)) is { } policy
            ? policy.Footprint(spec)
            : null;
}

namespace PrefTune.Training.Methods;

/// <summary>Every preference fine-tuning method PrefTune knows. Adding a method: one file with a Descriptor, one line here.</summary>
public static class MethodRegistry
{
    public static IReadOnlyList<MethodDescriptor> All { get; } =
    [
        PrefFt.Descriptor,
        BestOfN.Descriptor,
        BestOfNNegative.Descriptor,
        BestOfNNegative.AverageDescriptor,
        BestOfNNegative.SumDescriptor,
        Rwr.Descriptor,
        Dpo.Descriptor,
        Ipo.Descriptor,
        Reinforce.Descriptor,
        Rloo.Descriptor,
        Ppo.Descriptor,
        PpoToken.Descriptor,
        Grpo.Descriptor,
    ];

    /// <exception cref="ArgumentException">Unknown name (the message lists the known ones).</exception>
    public static MethodDescriptor Get(string name) =>
        All.FirstOrDefault(m => m.Name == name)
        ?? throw new ArgumentException($"unknown method '{name}'; known: {string.Join(", ", All.Select(m => m.Name))}", nameof(name));

    /// <summary>A fresh loss for the method, its defaults overridden by <paramref name="parameters"/>.</summary>
    public static IPreferenceLoss Create(string name, IReadOnlyDictionary<string, double>? parameters = null) =>
        Get(name).Create(parameters ?? new Dictionary<string, double>());
}

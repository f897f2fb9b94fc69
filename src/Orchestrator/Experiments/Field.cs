using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>One key of a YAML block: how its value is read and which record field it sets.</summary>
internal sealed record Field<T>(Func<T, YamlNode, string, DocumentReader, T> Apply);

/// <summary>Builds <see cref="Field{T}"/>s for the value types an experiment file uses.</summary>
internal static class Field
{
    public static Field<T> Int<T>(Func<T, int, T> set) =>
        new((target, node, path, reader) => reader.Int(node, path) is { } value ? set(target, value) : target);

    public static Field<T> Number<T>(Func<T, double, T> set) =>
        new((target, node, path, reader) => reader.Number(node, path) is { } value ? set(target, value) : target);

    public static Field<T> Text<T>(Func<T, string, T> set) =>
        new((target, node, path, reader) => reader.Text(node, path) is { } value ? set(target, value) : target);

    /// <summary>A value with a fixed set of spellings, e.g. <c>online | offline</c>.</summary>
    public static Field<T> Choice<T, TValue>(IReadOnlyDictionary<string, TValue> choices, Func<T, TValue, T> set) =>
        new((target, node, path, reader) => reader.Text(node, path) is not { } text ? target
            : choices.TryGetValue(text, out var value) ? set(target, value)
            : reader.Fail(target, path, $"unknown value '{text}'", string.Join(", ", choices.Keys)));

    /// <summary>A nested block read with its own key table.</summary>
    public static Field<T> Block<T, TBlock>(Func<T, TBlock> start, IReadOnlyDictionary<string, Field<TBlock>> fields,
        Func<T, TBlock, T> set) =>
        new((target, node, path, reader) => set(target, reader.Block(node, path, start(target), fields)));

    /// <summary>Keeps the raw node to read later, when what it means depends on other keys.</summary>
    public static Field<T> Node<T>(Func<T, YamlNode, T> set) =>
        new((target, node, _, _) => set(target, node));
}

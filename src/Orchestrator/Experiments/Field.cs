using System.Linq.Expressions;
using System.Reflection;
using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>One key of a YAML block: how its value is read and which record field it sets.</summary>
internal sealed record Field<T>(Func<T, YamlNode, string, DocumentReader, T> Apply);

/// <summary>Builds <see cref="Field{T}"/>s for the value types an experiment file uses.</summary>
internal static class Field
{
    /// <summary>
    /// The key table of a flat config record, derived from its properties (their declaration order): each int, double, string
    /// or enum property (an enum is spelled in lower case; a nullable number is set when written) is the key <see cref="KeyOf(MemberInfo)"/> names, set on a copy of the record (what <c>with</c> does).
    /// The record's field names are written once, in the record; its doc comments are the keys' documentation.
    /// </summary>
    /// <exception cref="InvalidOperationException">A property of a type the file cannot spell (a nested block is listed by hand).</exception>
    /// <param name="except">Properties left out (read another way, e.g. a nested block).</param>
    public static IReadOnlyDictionary<string, Field<T>> Of<T>(IEqualityComparer<string>? keys = null, params string[] except) where T : class
    {
        var clone = typeof(T).GetMethod("<Clone>$") ?? throw new InvalidOperationException($"{typeof(T).Name} is not a record");
        T With(T target, PropertyInfo property, object value)
        {
            var copy = (T)clone.Invoke(target, null)!;
            property.SetValue(copy, value);
            return copy;
        }
        var fields = new Dictionary<string, Field<T>>(keys ?? StringComparer.Ordinal);
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && !except.Contains(p.Name)))
            fields[KeyOf(property)] = property.PropertyType switch
            {
                var t when t == typeof(int) || t == typeof(int?) => Int<T>((s, v) => With(s, property, v)),
                var t when t == typeof(long) || t == typeof(long?) =>
                    new Field<T>((s, node, path, reader) => reader.Long(node, path) is { } v ? With(s, property, v) : s),
                var t when t == typeof(bool) => new Field<T>((s, node, path, reader) => reader.Bool(node, path) is { } v ? With(s, property, v) : s),
                var t when t == typeof(double) || t == typeof(double?) => Number<T>((s, v) => With(s, property, v)),
                var t when t.IsEnum => Choice<T, object>(Enum.GetValues(t).Cast<object>().ToDictionary(v => v.ToString()!.ToLowerInvariant()),
                    (s, v) => With(s, property, v)),
                var t when t == typeof(string) => Text<T>((s, v) => With(s, property, v)),
                var t => throw new InvalidOperationException($"{typeof(T).Name}.{property.Name}: an experiment file has no reader for {t.Name}"),
            };
        return fields;
    }

    /// <summary>The experiment-file key of a record property: snake_case (<c>RewardCenter</c> is <c>reward_center</c>); a
    /// one-letter name keeps its case (the paper's B, C, M, T).</summary>
    public static string KeyOf(MemberInfo member) =>
        member.Name.Length == 1 ? member.Name
        : string.Concat(member.Name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));

    /// <summary>The key of the property <paramref name="property"/> reads, e.g. <c>Key&lt;LoopSpec, int&gt;(l =&gt; l.B)</c> is "B".</summary>
    public static string KeyOf<T, TValue>(Expression<Func<T, TValue>> property) =>
        KeyOf(((MemberExpression)property.Body).Member);

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

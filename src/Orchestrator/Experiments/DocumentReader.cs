using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>
/// Walks a YAML (or JSON) document through key tables, collecting every problem with its field path
/// and line instead of stopping at the first.
/// </summary>
internal sealed class DocumentReader
{
    private readonly Dictionary<string, int> _lines = [];
    private readonly List<ExperimentProblem> _problems = [];

    public IReadOnlyList<ExperimentProblem> Problems => _problems;

    /// <summary>Reads a mapping node key by key into <paramref name="start"/>; unknown keys are problems.</summary>
    public T Block<T>(YamlNode? node, string path, T start, IReadOnlyDictionary<string, Field<T>> fields)
    {
        if (node is null || IsNull(node))
            return start;
        Seen(path, node);
        if (node is not YamlMappingNode mapping)
            return Fail(start, path, $"expected a block of keys, got {Describe(node)}", KeyList(fields));
        var target = start;
        foreach (var (keyNode, value) in mapping.Children)
        {
            var key = keyNode is YamlScalarNode { Value: { } text } ? text : keyNode.ToString();
            var keyPath = Join(path, key);
            Seen(keyPath, keyNode);
            target = fields.TryGetValue(key, out var field)
                ? field.Apply(target, value, keyPath, this)
                : Fail(target, keyPath, $"unknown key '{key}'", KeyList(fields));
        }
        return target;
    }

    public int? Int(YamlNode node, string path) =>
        Number<int>(node, path, "an integer", "whole numbers, e.g. 10",
            text => int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null);

    public double? Number(YamlNode node, string path) =>
        Number<double>(node, path, "a number", "numbers, e.g. 0.001 or 1e-3",
            text => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                    && double.IsFinite(v) ? v : null);

    public long? Long(YamlNode node, string path) =>
        Number<long>(node, path, "an integer", "whole numbers, e.g. 10",
            text => long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null);

    public bool? Bool(YamlNode node, string path) =>
        Text(node, path) switch
        {
            null => null,
            "true" or "True" or "yes" => true,
            "false" or "False" or "no" => false,
            var text => Fail<bool?>(null, path, $"expected true or false, got '{text}'", "true, false"),
        };

    public string? Text(YamlNode node, string path)
    {
        Seen(path, node);
        return node is YamlScalarNode { Value: { } text } && !IsNull(node)
            ? text
            : Fail<string?>(null, path, $"expected text, got {Describe(node)}", "text");
    }

    public IReadOnlyList<int>? IntList(YamlNode node, string path)
    {
        Seen(path, node);
        if (node is not YamlSequenceNode sequence)
            return Fail<IReadOnlyList<int>?>(null, path, $"expected a list of integers, got {Describe(node)}", "e.g. [1, 2, 3]");
        var items = sequence.Children.Select((item, i) => Int(item, $"{path}[{i}]")).ToList();
        return items.All(i => i is not null) ? items.Select(i => i!.Value).ToList() : null;
    }

    public IReadOnlyList<YamlNode> List(YamlNode node, string path)
    {
        Seen(path, node);
        return node is YamlSequenceNode sequence
            ? sequence.Children.ToList()
            : Fail<IReadOnlyList<YamlNode>>([], path, $"expected a list, got {Describe(node)}", null);
    }

    /// <summary>Records a problem at <paramref name="path"/> and returns <paramref name="value"/> unchanged.</summary>
    public T Fail<T>(T value, string path, string problem, string? allowed)
    {
        Add(path, problem, allowed);
        return value;
    }

    /// <summary>Records a problem; the line is that of the field or, when it is missing, of its closest parent.</summary>
    public void Add(string path, string problem, string? allowed = null)
    {
        var item = new ExperimentProblem(path, LineOf(path), problem, allowed);
        if (!_problems.Contains(item))
            _problems.Add(item);
    }

    /// <summary>Whether a problem is already noted at <paramref name="path"/> (a later check of the same field would only repeat it).</summary>
    public bool HasProblemAt(string path) => _problems.Any(p => p.Path == path);

    /// <summary>Remembers the line of a field so that later problems about it can name it.</summary>
    public void Seen(string path, YamlNode node) => _lines.TryAdd(path, (int)node.Start.Line);

    public static string Join(string path, string key) => path == "" ? key : $"{path}.{key}";

    private T? Number<T>(YamlNode node, string path, string expected, string allowed, Func<string, T?> parse) where T : struct
    {
        Seen(path, node);
        // A quoted scalar is text even when it looks like a number ("10" in JSON is a string).
        if (node is YamlScalarNode { Value: { } text } scalar && IsPlain(scalar) && parse(text) is { } value)
            return value;
        return Fail<T?>(null, path, $"expected {expected}, got {Describe(node)}", allowed);
    }

    private int? LineOf(string path)
    {
        for (var p = path; ; p = Parent(p))
        {
            if (_lines.TryGetValue(p, out var line))
                return line;
            if (p == "")
                return null;
        }
    }

    private static string Parent(string path) => path[..Math.Max(0, path.LastIndexOfAny(['.', '[']))];

    private static bool IsPlain(YamlScalarNode scalar) => scalar.Style is ScalarStyle.Plain or ScalarStyle.Any;

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Value: null or "" or "~" or "null" } scalar && IsPlain(scalar);

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a block of keys",
        YamlSequenceNode => "a list",
        YamlScalarNode scalar when IsNull(scalar) => "nothing",
        YamlScalarNode { Value: var text } scalar when !IsPlain(scalar) => $"the text \"{text}\"",
        YamlScalarNode { Value: var text } => $"'{text}'",
        _ => node.NodeType.ToString(),
    };

    private static string KeyList<T>(IReadOnlyDictionary<string, Field<T>> fields) => string.Join(", ", fields.Keys);
}

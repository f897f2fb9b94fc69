using PrefTune.Orchestrator.Experiments;
using PrefTune.Training.Toy;
using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Toy;

/// <summary>A loaded mode-seeking toy file.</summary>
public sealed record ToyExperiment
{
    /// <summary>The file's <c>name</c>; names the results folder.</summary>
    public required string Name { get; init; }
    public string? Description { get; init; }
    public required ModeSeekingToySpec Toy { get; init; }
}

/// <summary>
/// Reads a mode-seeking toy file (<c>kind: mode-seeking-toy</c>; keys name, description, p0, q, learning_rate,
/// steps) with the experiment files' reader: every problem is reported at once, by field and line, in an
/// <see cref="ExperimentFileException"/>.
/// </summary>
public static class ToyExperimentFile
{
    public const string Kind = "mode-seeking-toy";

    /// <summary>How far from 1 a distribution's sum may be.</summary>
    public const double SumTolerance = 1e-6;

    private const string Distribution = "probabilities summing to 1, e.g. [0.3, 0.3, 0.1, 0.3]";

    /// <summary>The top level as written; everything optional so that a missing key becomes a problem, not a crash.</summary>
    private sealed record Document
    {
        public string? Name { get; init; }
        public string? Description { get; init; }
        /// <summary>The distributions are read once every key is in, like an experiment's methods.</summary>
        public YamlNode? P0 { get; init; }
        public YamlNode? Q { get; init; }
        public double? LearningRate { get; init; }
        public int? Steps { get; init; }
    }

    private static readonly IReadOnlyDictionary<string, Field<Document>> Top = new Dictionary<string, Field<Document>>
    {
        ["kind"] = Field.Node<Document>((d, _) => d),   // checked before reading (RequireToy)
        ["name"] = Field.Text<Document>((d, v) => d with { Name = v }),
        ["description"] = Field.Text<Document>((d, v) => d with { Description = v }),
        ["p0"] = Field.Node<Document>((d, v) => d with { P0 = v }),
        ["q"] = Field.Node<Document>((d, v) => d with { Q = v }),
        ["learning_rate"] = Field.Number<Document>((d, v) => d with { LearningRate = v }),
        ["steps"] = Field.Int<Document>((d, v) => d with { Steps = v }),
    };

    public static ToyExperiment Load(string path)
    {
        if (!File.Exists(path))
            throw new ExperimentFileException(path, [new("", null, "no such file", null)]);
        return Parse(File.ReadAllText(path), path);
    }

    public static ToyExperiment Parse(string text, string sourceName)
    {
        var root = ExperimentFile.ReadRoot(text, sourceName);
        RequireToy(root, sourceName);
        var reader = new DocumentReader();
        var document = reader.Block(root, "", new Document(), Top);
        var experiment = Build(document, reader);
        if (reader.Problems.Count > 0)
            throw new ExperimentFileException(sourceName, reader.Problems.OrderBy(p => p.Line ?? int.MaxValue).ToList());
        return experiment;
    }

    /// <summary>Stops at a file that is not a toy (e.g. a bandit experiment) with that one problem, not a list of unknown keys.</summary>
    private static void RequireToy(YamlNode root, string sourceName)
    {
        var kind = KindNode(root);
        if (kind is YamlScalarNode { Value: Kind })
            return;
        var problem = kind is null
            ? $"missing: a toy file says kind: {Kind} at the top level (a bandit experiment runs with `preftune run`)"
            : $"unknown kind '{(kind as YamlScalarNode)?.Value ?? kind.NodeType.ToString()}'";
        throw new ExperimentFileException(sourceName, [new("kind", kind is null ? null : (int)kind.Start.Line, problem, Kind)]);
    }

    /// <summary>Stops <c>preftune run</c> at a toy file with a pointer to <c>preftune toy</c>, instead of a list of unknown keys.</summary>
    internal static void RefuseToy(YamlNode root, string sourceName)
    {
        if (KindNode(root) is YamlScalarNode { Value: Kind } kind)
            throw new ExperimentFileException(sourceName,
                [new("kind", (int)kind.Start.Line, $"a {Kind} file is not a bandit experiment", $"run it with `preftune toy {sourceName}`")]);
    }

    private static YamlNode? KindNode(YamlNode root) =>
        root is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode("kind"), out var kind) ? kind : null;

    private static ToyExperiment Build(Document document, DocumentReader reader)
    {
        var name = ExperimentFile.CheckName(document.Name, reader);
        var p0 = ReadDistribution("p0", document.P0, reader);
        var q = ReadDistribution("q", document.Q, reader);
        if (p0 is not null && q is not null && p0.Count != q.Count)
            reader.Add("q", $"q has {q.Count} categories but p0 has {p0.Count}", $"as many entries as p0 ({p0.Count})");

        // A value written but unreadable was reported while reading; "missing" means not written at all.
        bool Reported(string key) => reader.Problems.Any(p => p.Path == key);
        if (document.LearningRate is null && !Reported("learning_rate"))
            reader.Add("learning_rate", "missing: the step size of gradient descent on the logits", "numbers > 0, e.g. 0.95");
        else if (document.LearningRate is { } learningRate && !(learningRate > 0))
            reader.Add("learning_rate", $"learning_rate = {learningRate} is not positive", "numbers > 0");
        if (document.Steps is null && !Reported("steps"))
            reader.Add("steps", "missing: the number of gradient steps", "integers >= 1, e.g. 3");
        else if (document.Steps is { } steps && steps < 1)
            reader.Add("steps", $"steps = {steps} is below 1", "integers >= 1");

        return new ToyExperiment
        {
            Name = name,
            Description = document.Description,
            Toy = new ModeSeekingToySpec
            {
                P0 = p0 ?? [], Q = q ?? [], LearningRate = document.LearningRate ?? 0, Steps = document.Steps ?? 0,
            },
        };
    }

    /// <summary>
    /// A probability vector over at least 2 categories, summing to 1 within <see cref="SumTolerance"/>.
    /// Entries must be positive, not just non-negative: the logits start at log p0, and KL(p||q) is infinite
    /// wherever q is 0 (softmax never gives p = 0). Returns null when the list is missing or unreadable.
    /// </summary>
    private static IReadOnlyList<double>? ReadDistribution(string key, YamlNode? node, DocumentReader reader)
    {
        if (node is null)
        {
            reader.Add(key, "missing", Distribution);
            return null;
        }
        if (NumberList(node, key, reader) is not { } values)
            return null;
        if (values.Count < 2)
            reader.Add(key, $"{key} has {values.Count} categor{(values.Count == 1 ? "y" : "ies")}; the toy needs at least 2", Distribution);
        foreach (var (value, i) in values.Select((v, i) => (v, i)).Where(e => !(e.v > 0)))
            reader.Add($"{key}[{i}]", $"{key}[{i}] = {value} is not positive", key == "p0"
                ? "numbers > 0 (the logits start at log p0)"
                : "numbers > 0 (KL(p||q) is infinite where q is 0)");
        var sum = values.Sum();
        if (Math.Abs(sum - 1) > SumTolerance)
            reader.Add(key, $"{key} sums to {sum:G10}, not 1", $"{Distribution} (within {SumTolerance:0e0})");
        return values;
    }

    private static IReadOnlyList<double>? NumberList(YamlNode node, string path, DocumentReader reader)
    {
        var items = reader.List(node, path).Select((item, i) => reader.Number(item, $"{path}[{i}]")).ToList();
        return node is YamlSequenceNode && items.All(i => i is not null) ? items.Select(i => i!.Value).ToList() : null;
    }
}

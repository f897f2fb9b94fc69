using System.Text.RegularExpressions;
using PrefTune.Messages;
using PrefTune.Training.Methods;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using static PrefTune.Orchestrator.Experiments.ExperimentSchema;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>
/// Reads an experiment file (YAML, or JSON, which YamlDotNet reads too) into one <see cref="RunSpec"/> per
/// (method entry × seed). Everything is checked before anything runs; all problems are reported at once
/// in an <see cref="ExperimentFileException"/>.
/// </summary>
public static partial class ExperimentFile
{
    private static readonly IReadOnlyList<string> TaskKinds = Training.Tasks.PreferenceTasks.Kinds;

    public static Experiment Load(string path)
    {
        if (!File.Exists(path))
            throw new ExperimentFileException(path, [new("", null, "no such file", null)]);
        return Parse(File.ReadAllText(path), path);
    }

    public static Experiment Parse(string text, string sourceName)
    {
        var reader = new DocumentReader();
        var root = ReadRoot(text, sourceName);
        Toy.ToyExperimentFile.RefuseToy(root, sourceName);
        Studies.StudyFile.RefuseStudy(root, sourceName);
        var document = reader.Block(root, "", new Document(), Top);
        var experiment = Build(document, reader, FolderOf(sourceName));
        if (reader.Problems.Count > 0)
            throw new ExperimentFileException(sourceName, reader.Problems.OrderBy(p => p.Line ?? int.MaxValue).ToList());
        return experiment;
    }

    internal static YamlNode ReadRoot(string text, string sourceName)
    {
        var stream = new YamlStream();
        var parser = new Parser(new StringReader(text));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException e)
        {
            var problem = StripMark((e.InnerException as YamlException ?? e).Message);
            throw new ExperimentFileException(sourceName, [new("", (int)e.Start.Line, $"not valid YAML/JSON: {problem}", null)]);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner can fail without a position (e.g. an unclosed bracket at the end of the
            // file); the last event it read is the best line there is.
            var line = parser.Current is { } last ? (int?)last.End.Line : null;
            throw new ExperimentFileException(sourceName,
                [new("", line, "not valid YAML/JSON: cannot read on from here (an unclosed bracket or quote?)", null)]);
        }
        return stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" }
            ? throw new ExperimentFileException(sourceName, [new("", null, "the file is empty", "name, task, loop, methods, ...")])
            : stream.Documents[0].RootNode;
    }

    /// <summary>The folder relative paths in a file are read from: the file's own.</summary>
    internal static string FolderOf(string sourceName) => Path.GetDirectoryName(Path.GetFullPath(sourceName)) ?? Directory.GetCurrentDirectory();

    /// <summary>Checks a read document and expands its methods × seeds, adding problems to <paramref name="reader"/> (also the base of a study file).
    /// Relative paths (models, tokenizers, prompt files) are resolved against <paramref name="folder"/> and recorded whole.</summary>
    /// <param name="preparedPairs">A study prepares the pairs file its offline methods read (so they need C = 2 as with task.length.dataset).</param>
    internal static Experiment Build(Document document, DocumentReader reader, string folder, bool preparedPairs = false)
    {
        var name = CheckName(document.Name, reader);
        CheckSeeds(document.Seeds, reader);
        if (document.TorchThreads < 1)
            reader.Add("torch_threads", $"torch_threads = {document.TorchThreads} is below 1", "integers >= 1");
        var task = CheckTask(document.Task, reader);
        task = LanguageModelChecks.CheckTask(task, folder, reader);
        var datasetPairs = LanguageModelChecks.CheckDataset(task, reader);
        var optimizer = document.Optimizer;
        foreach (var problem in optimizer?.Problems() ?? [])
            reader.Add("optimizer." + problem.Split(" = ")[0], problem);
        var rewardModel = document.RewardModel is null ? null : LanguageModelChecks.CheckRewardModel(document.RewardModel, task, folder, reader);
        var loopKeys = WrittenKeys(document.LoopNode);
        ExperimentRules.Check(document.Loop, ExperimentRules.Loop,
            keys => $"loop.{loopKeys.GetValueOrDefault(keys[0], keys[0])}", reader);

        var labels = new Dictionary<string, int>();
        var runs = new List<RunSpec>();
        foreach (var (entry, i) in MethodEntries(document, reader).Select((e, i) => (e, i)))
        {
            var (label, method, loop) = ReadMethod(entry, i, document, task, datasetPairs, preparedPairs, labels, reader);
            if (method is null || loop is null)
                continue;
            runs.AddRange(document.Seeds.Select(seed => new RunSpec
            {
                Experiment = name, Label = label, Task = task, Method = method, Loop = loop,
                Seed = seed, TorchThreads = document.TorchThreads, Optimizer = optimizer, RewardModel = rewardModel,
            }));
        }
        return new Experiment { Name = name, Description = document.Description, Runs = runs, Seeds = document.Seeds };
    }

    private static IEnumerable<YamlNode> MethodEntries(Document document, DocumentReader reader)
    {
        if (document.Methods is null)
        {
            reader.Add("methods", "missing: list the methods to run", string.Join(", ", MethodNames()));
            return [];
        }
        var entries = reader.List(document.Methods, "methods");
        if (entries.Count == 0 && document.Methods is YamlSequenceNode)
            reader.Add("methods", "the list is empty", string.Join(", ", MethodNames()));
        return entries;
    }

    /// <summary>Reads one <c>methods[i]</c> entry: its registry name, parameters, loop overrides and label.</summary>
    private static (string Label, MethodSpec? Method, LoopSpec? Loop) ReadMethod(YamlNode node, int index,
        Document document, TaskSpec task, int? datasetPairs, bool preparedPairs, Dictionary<string, int> labels, DocumentReader reader)
    {
        var path = $"methods[{index}]";
        var entry = reader.Block(node, path, new MethodEntry(), ExperimentSchema.Method);
        if (node is not YamlMappingNode)
            return default;
        var descriptor = entry.Name is null ? null : MethodRegistry.All.FirstOrDefault(m => m.Name == entry.Name);
        if (entry.Name is null)
            reader.Add($"{path}.name", "missing", string.Join(", ", MethodNames()));
        else if (descriptor is null)
            reader.Add($"{path}.name", $"unknown method '{entry.Name}'", string.Join(", ", MethodNames()));
        else if (!descriptor.Axes.Supports(entry.Data))
            reader.Add($"{path}.data", $"{descriptor.Name} cannot train on {Spelling(entry.Data)} data",
                string.Join(", ", DataSources.Where(d => descriptor.Axes.Supports(d.Value)).Select(d => d.Key)));

        if (descriptor is { TokenLevel: true } && PolicyOf(task) is { ScoresTokens: false } policy)
            reader.Add($"{path}.name", $"{descriptor.Name} is token-level, but the {policy.Name} policy has no value head to score tokens with",
                string.Join(", ", MethodNames().Where(m => !MethodRegistry.Get(m).TokenLevel)));

        var parameters = descriptor is null
            ? []
            : reader.Block(entry.Parameters, $"{path}.parameters", new Dictionary<string, double>(),
                Parameters(descriptor.Defaults.Keys));

        var loop = reader.Block(entry.Loop, $"{path}.loop", document.Loop, ExperimentSchema.Loop);
        var overridden = WrittenKeys(entry.Loop);
        var topKeys = WrittenKeys(document.LoopNode);
        string PathOf(string[] keys) => keys.FirstOrDefault(overridden.ContainsKey) is { } key
            ? $"{path}.loop.{overridden[key]}"
            : $"loop.{topKeys.GetValueOrDefault(keys[0], keys[0])}";
        ExperimentRules.Check(loop, ExperimentRules.Loop, PathOf, reader);
        var pairsFile = Training.Tasks.PreferenceTasks.PairsFile(task) is not null ? $"task.{task.Kind}.dataset" : null;
        if (entry.Data == DataSource.Offline && datasetPairs == 0 && !preparedPairs)
            reader.Add($"{path}.data", $"offline methods train on the pairs of {pairsFile}, but it holds prompts only", "online");
        else if (entry.Data == DataSource.Offline && (pairsFile is not null || preparedPairs))
        {
            // D_pref is the pairs file: each row a prompt group of 2 (y_w, y_l). C = 2 is refused otherwise rather than
            // derived, since B and M are multiples of C and would silently change meaning; D_pref's size is the file's.
            if (loop.C != 2)
                reader.Add(PathOf(["C"]), $"offline data from {(preparedPairs ? "the pairs file prepare builds" : pairsFile)} needs C = 2 (each pair is one prompt with 2 responses, y_w and y_l); got C = {loop.C}",
                    "C: 2, with B and M multiples of 2");
            loop = loop with { DatasetResponses = 2, DatasetPrompts = datasetPairs ?? loop.DatasetPrompts };
        }
        else if (entry.Data == DataSource.Offline)
            ExperimentRules.Check(loop, ExperimentRules.Offline, _ => $"{path}.data", reader);
        ExperimentRules.CheckMemory(task, loop, entry.Data, key => PathOf([key]), key => $"task.{(task.Kind == "bandit" ? "bandit" : "model")}.{key}", reader);
        if (descriptor is not null)
            ExperimentRules.CheckParameters(descriptor.Name, parameters, name => $"{path}.parameters.{name}", reader);

        var label = entry.Label ?? $"{entry.Name} ({Spelling(entry.Data)})";
        if (labels.TryGetValue(label, out var first))
            reader.Add(entry.Label is null ? path : $"{path}.label", $"label '{label}' is already used by methods[{first}]",
                "a label unique within the experiment (set label: to tell the entries apart)");
        else
            labels[label] = index;

        return descriptor is null
            ? default
            : (label, new MethodSpec { Name = descriptor.Name, Data = entry.Data, Parameters = parameters }, loop);
    }

    internal static string CheckName(string? name, DocumentReader reader)
    {
        if (name is null)
            reader.Add("name", "missing: every experiment needs a name", "letters, digits, '.', '_' and '-'");
        else if (!SafeName().IsMatch(name))
            reader.Add("name", $"'{name}' cannot name a results folder", "letters, digits, '.', '_' and '-'");
        return name ?? "";
    }

    private static void CheckSeeds(IReadOnlyList<int> seeds, DocumentReader reader)
    {
        if (seeds.Count == 0)
            reader.Add("seeds", "the list is empty", "one or more distinct integers, e.g. [1, 2, 3]");
        foreach (var seed in seeds.GroupBy(s => s).Where(g => g.Count() > 1))
            reader.Add("seeds", $"seed {seed.Key} appears {seed.Count()} times", "one or more distinct integers");
    }

    private static TaskSpec CheckTask(TaskSpec? task, DocumentReader reader)
    {
        if (task is null)
        {
            reader.Add("task", "missing: say which problem to train on", "a block with kind: bandit");
            return new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() };
        }
        if (!TaskKinds.Contains(task.Kind))
            reader.Add("task.kind", task.Kind == "" ? "missing" : $"unknown task kind '{task.Kind}'", string.Join(", ", TaskKinds));
        if (task.Kind != "bandit")
            return task;
        var bandit = task.Bandit ?? new BanditSpec();
        ExperimentRules.Check(bandit, ExperimentRules.Bandit, keys => $"task.bandit.{keys[0]}", reader);
        return task with { Bandit = bandit };
    }

    /// <summary>The policy kind a task spec names, or null for an unknown task or policy (reported elsewhere).</summary>
    private static Training.Policies.PolicyKind? PolicyOf(TaskSpec task) =>
        Training.Tasks.TaskRegistry.Find(task.Kind) is { } kind
            ? Training.Policies.PolicyRegistry.All.FirstOrDefault(p => p.Tasks.Contains(kind.Name) && p.Name == kind.PolicyOf(task))
            : null;

    private static string Spelling(DataSource data) => DataSources.Single(d => d.Value == data).Key;

    private static IEnumerable<string> MethodNames() => MethodRegistry.All.Select(m => m.Name).Order(StringComparer.Ordinal);

    /// <summary>The keys of a block as written, looked up case-insensitively (so <c>b</c> finds the B the user wrote).</summary>
    private static Dictionary<string, string> WrittenKeys(YamlNode? node)
    {
        var keys = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (node is YamlMappingNode mapping)
            foreach (var key in mapping.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? ""))
                keys.TryAdd(key, key);
        return keys;
    }

    private static string StripMark(string message) => YamlMark().Replace(message, "");

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SafeName();

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex YamlMark();
}

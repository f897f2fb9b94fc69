using System.Text.RegularExpressions;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Training.Methods;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;
using PrefTune.Training.Tasks.Preference;
using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Studies;

/// <summary>
/// Reads a study file (<c>kind: study</c>): every key of an experiment file, read and checked by the experiment
/// file's own code, plus <c>rewards</c> (the reward axis: overrides of <c>task.bandit</c>) and <c>sweeps</c> (one
/// method over values of one loop field). Every problem, with its field and line, is reported at once in an
/// <see cref="ExperimentFileException"/>, including which swept value breaks which of Algorithm 1's rules.
/// </summary>
public static partial class StudyFile
{
    public const string Kind = "study";

    private const string Labels = "letters, digits, '.', '_' and '-' (it names the report's files)";

    /// <summary>The top level: an experiment document plus the study's own keys.</summary>
    private sealed record Document
    {
        public ExperimentSchema.Document Base { get; init; } = new();
        public YamlNode? Rewards { get; init; }
        public YamlNode? Sweeps { get; init; }
        public YamlNode? Prepare { get; init; }
    }

    /// <summary>A reward entry: its label and the task with the entry's overrides (of task.bandit, task.length or task.preference).</summary>
    private sealed record RewardEntry(string? Label, TaskSpec Task);

    private sealed record SweepEntry
    {
        public string? Label { get; init; }
        public string? Method { get; init; }
        public DataSource Data { get; init; } = DataSource.Online;
        public YamlNode? Parameters { get; init; }
        public string? Field { get; init; }
        public YamlNode? Values { get; init; }
    }

    private static readonly IReadOnlyDictionary<string, Field<Document>> Top = new[]
        {
            new KeyValuePair<string, Field<Document>>("kind", Field.Node<Document>((d, _) => d)),   // checked before reading
        }
        .Concat(ExperimentSchema.Top.Select(f => KeyValuePair.Create(f.Key,
            new Field<Document>((d, node, path, reader) => d with { Base = f.Value.Apply(d.Base, node, path, reader) }))))
        .Append(KeyValuePair.Create("rewards", Field.Node<Document>((d, v) => d with { Rewards = v })))
        .Append(KeyValuePair.Create("sweeps", Field.Node<Document>((d, v) => d with { Sweeps = v })))
        .Append(KeyValuePair.Create("prepare", Field.Node<Document>((d, v) => d with { Prepare = v })))
        .ToDictionary();

    /// <summary>A bandit study's reward entry: its label and any key of <c>task.bandit</c>.</summary>
    private static readonly IReadOnlyDictionary<string, Field<RewardEntry>> BanditReward = RewardKeys(ExperimentSchema.Bandit,
        t => t.Bandit ?? new BanditSpec(), (t, v) => t with { Bandit = v });

    /// <summary>A length study's reward entry (one of the paper's tasks): its label and any key of <c>task.length</c>.</summary>
    private static readonly IReadOnlyDictionary<string, Field<RewardEntry>> LengthReward = RewardKeys(ExperimentSchema.Length,
        t => t.Length ?? new LengthSpec(), (t, v) => t with { Length = v });

    /// <summary>A preference study's reward entry (a dataset and its gold reward model): its label and any key of <c>task.preference</c>.</summary>
    private static readonly IReadOnlyDictionary<string, Field<RewardEntry>> PreferenceReward = RewardKeys(ExperimentSchema.Preference,
        t => t.Preference ?? new PreferenceSpec(), (t, v) => t with { Preference = v });

    private static IReadOnlyDictionary<string, Field<RewardEntry>> RewardKeys<TBlock>(IReadOnlyDictionary<string, Field<TBlock>> block,
        Func<TaskSpec, TBlock> get, Func<TaskSpec, TBlock, TaskSpec> set) => block
        .Select(f => KeyValuePair.Create(f.Key,
            new Field<RewardEntry>((r, node, path, reader) => r with { Task = set(r.Task, f.Value.Apply(get(r.Task), node, path, reader)) })))
        .Prepend(KeyValuePair.Create("label", Field.Text<RewardEntry>((r, v) => r with { Label = v })))
        .ToDictionary();

    /// <summary>The prepare block: a preference dataset and a reward model per task, with the commands' settings.</summary>
    private static readonly IReadOnlyDictionary<string, Field<StudyPreparation>> Prepare = new Dictionary<string, Field<StudyPreparation>>
    {
        ["preference_data"] = Field.Block<StudyPreparation, PreferenceDatasetSettings>(p => p.Data, Field.Of<PreferenceDatasetSettings>(),
            (p, v) => p with { Data = v }),
        ["reward_model"] = Field.Block<StudyPreparation, RewardTrainingSettings>(p => p.RewardModel,
            new Dictionary<string, Field<RewardTrainingSettings>>(Field.Of<RewardTrainingSettings>(null, nameof(RewardTrainingSettings.Optimizer)))
            {
                ["optimizer"] = Field.Block<RewardTrainingSettings, OptimizerSettings>(r => r.Optimizer, ExperimentSchema.Optimizer,
                    (r, v) => r with { Optimizer = v }),
            },
            (p, v) => p with { RewardModel = v }),
    };

    private static readonly IReadOnlyDictionary<string, Field<SweepEntry>> Sweep = new Dictionary<string, Field<SweepEntry>>
    {
        ["label"] = Field.Text<SweepEntry>((s, v) => s with { Label = v }),
        ["method"] = Field.Text<SweepEntry>((s, v) => s with { Method = v }),
        ["data"] = Field.Choice<SweepEntry, DataSource>(ExperimentSchema.DataSources, (s, v) => s with { Data = v }),
        ["parameters"] = Field.Node<SweepEntry>((s, v) => s with { Parameters = v }),
        ["field"] = Field.Text<SweepEntry>((s, v) => s with { Field = v }),
        ["values"] = Field.Node<SweepEntry>((s, v) => s with { Values = v }),
    };

    /// <summary>
    /// Every value of a sweep must end at the same gradient step, so the run's budget must be whole iterations
    /// (the driver rounds up to a whole iteration of T*B/M steps).
    /// </summary>
    private static readonly Rule<LoopSpec> WholeIterations = new(["gradient_steps"],
        l => l.GradientSteps % StepsPerIteration(l) != 0,
        l => $"gradient_steps = {l.GradientSteps} is not a multiple of T*B/M = {StepsPerIteration(l)} gradient steps per iteration: "
             + $"this run would stop at step {(l.GradientSteps + StepsPerIteration(l) - 1) / StepsPerIteration(l) * StepsPerIteration(l)}",
        "gradient_steps a multiple of T*B/M for every swept value, so that every value of a sweep ends at the same step");

    public static Study Load(string path)
    {
        if (!File.Exists(path))
            throw new ExperimentFileException(path, [new("", null, "no such file", null)]);
        return Parse(File.ReadAllText(path), path);
    }

    public static Study Parse(string text, string sourceName)
    {
        var root = ExperimentFile.ReadRoot(text, sourceName);
        RequireStudy(root, sourceName);
        var reader = new DocumentReader();
        var document = reader.Block(root, "", new Document(), Top);
        var study = Build(document, reader, ExperimentFile.FolderOf(sourceName));
        if (reader.Problems.Count > 0)
            throw new ExperimentFileException(sourceName, reader.Problems.OrderBy(p => p.Line ?? int.MaxValue).ToList());
        return study;
    }

    /// <summary>Stops <c>preftune run</c> at a study file with a pointer to <c>preftune study</c>.</summary>
    internal static void RefuseStudy(YamlNode root, string sourceName)
    {
        if (KindNode(root) is YamlScalarNode { Value: Kind } kind)
            throw new ExperimentFileException(sourceName,
                [new("kind", (int)kind.Start.Line, "a study file is not a single experiment", $"run it with `preftune study {sourceName}`")]);
    }

    private static void RequireStudy(YamlNode root, string sourceName)
    {
        var kind = KindNode(root);
        if (kind is YamlScalarNode { Value: Kind })
            return;
        var problem = kind is null
            ? $"missing: a study file says kind: {Kind} at the top level (an experiment file runs with `preftune run`)"
            : $"unknown kind '{(kind as YamlScalarNode)?.Value ?? kind.NodeType.ToString()}'";
        throw new ExperimentFileException(sourceName, [new("kind", kind is null ? null : (int)kind.Start.Line, problem, Kind)]);
    }

    private static YamlNode? KindNode(YamlNode root) =>
        root is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode("kind"), out var kind) ? kind : null;

    private static Study Build(Document document, DocumentReader reader, string folder)
    {
        var preparation = ReadPreparation(document, reader);
        var experiment = ExperimentFile.Build(document.Base, reader, folder, preparedPairs: preparation is not null);
        var task = experiment.Runs.FirstOrDefault()?.Task ?? new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() };
        var rewards = ReadRewards(document.Rewards, task, document.Base.Loop, preparation, folder, reader);
        var sweeps = ReadSweeps(document.Sweeps, task, document.Base.Loop, reader);

        var runs = new List<StudyRun>();
        foreach (var reward in rewards)
            runs.AddRange(experiment.Runs.Select(spec => new StudyRun(
                new StudyCell { Reward = reward.Label, Label = spec.Label, Seed = spec.Seed },
                spec with { Task = reward.Task })));
        foreach (var reward in rewards)
            foreach (var sweep in sweeps)
                foreach (var value in sweep.Values)
                    runs.AddRange(experiment.Seeds.Select(seed => new StudyRun(
                        new StudyCell { Reward = reward.Label, Label = sweep.Label, SweepField = sweep.Field, SweepValue = value, Seed = seed },
                        new RunSpec
                        {
                            Experiment = experiment.Name, Label = sweep.RunLabel(value), Seed = seed,
                            Task = reward.Task, Method = sweep.Method,
                            Loop = StudyValues.Apply(document.Base.Loop, sweep.Field, value),
                            TorchThreads = document.Base.TorchThreads,
                            Optimizer = experiment.Runs.FirstOrDefault()?.Optimizer,
                            RewardModel = experiment.Runs.FirstOrDefault()?.RewardModel,
                        })));

        return new Study
        {
            Name = experiment.Name,
            Description = experiment.Description,
            Seeds = experiment.Seeds,
            Methods = experiment.Runs.Select(r => r.Label).Distinct().ToList(),
            Rewards = rewards,
            Sweeps = sweeps,
            Runs = runs,
            Preparation = preparation,
        };
    }

    /// <summary>The prepare block, checked: only a length task has preference data and a reward model to prepare, and a
    /// prepared study trains on the reward models it makes, so it names none of its own.</summary>
    private static StudyPreparation? ReadPreparation(Document document, DocumentReader reader)
    {
        if (document.Prepare is null)
            return null;
        var preparation = reader.Block(document.Prepare, "prepare", new StudyPreparation(), Prepare);
        if (document.Base.Task is { } task && task.Kind != LengthTask.Descriptor.Name)
            reader.Add("prepare", $"task.kind is {task.Kind}: prepare builds a length task's preference data and reward model", "remove prepare, or kind: length");
        if (document.Base.RewardModel is not null)
            reader.Add("reward_model", "a study with prepare trains each task's reward model and its runs train on that one",
                "remove reward_model, or remove prepare and name a trained reward model");
        if (preparation.Data.Responses < 2)
            reader.Add("prepare.preference_data.responses", $"responses = {preparation.Data.Responses}: a pair needs at least 2 responses per prompt", "integers >= 2");
        try { preparation.RewardModel.Validate(); }
        catch (ArgumentException e) { reader.Add("prepare.reward_model." + e.Message.Split(" = ")[0], e.Message); }
        return preparation;
    }

    private static List<StudyReward> ReadRewards(YamlNode? node, TaskSpec task, LoopSpec loop, StudyPreparation? preparation, string folder,
        DocumentReader reader)
    {
        var languageModel = task.Kind == LengthTask.Descriptor.Name || task.Kind == PreferenceTask.Descriptor.Name;
        var (keys, block, example) = task.Kind switch
        {
            "length" => (LengthReward, "task.length", "entries of a label and task.length overrides, e.g. {label: min, goal: min}"),
            "preference" => (PreferenceReward, "task.preference", "entries of a label and task.preference overrides, e.g. {label: stories} or {label: hh, dataset: hh.jsonl}"),
            _ => (BanditReward, "task.bandit", "entries of a label and task.bandit overrides, e.g. {label: peak70, reward_center: 70}"),
        };
        if (node is null)
        {
            reader.Add("rewards", "missing: list the rewards to compare", example);
            return [];
        }
        var entries = reader.List(node, "rewards");
        if (entries.Count == 0 && node is YamlSequenceNode)
            reader.Add("rewards", "the list is empty", example);

        var rewards = new List<StudyReward>();
        var labels = new Dictionary<string, int>();
        foreach (var (entry, i) in entries.Select((e, i) => (e, i)))
        {
            var path = $"rewards[{i}]";
            var reward = reader.Block(entry, path, new RewardEntry(null, task), keys);
            if (entry is not YamlMappingNode mapping)
                continue;
            var written = mapping.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value).ToHashSet();
            string TaskPath(string key) => written.Contains(key) ? $"{path}.{key}" : $"{block}.{key}";
            var checkedTask = languageModel ? CheckLanguageModelTask(reward.Task, preparation, block, folder, TaskPath, reader) : reward.Task;
            if (!languageModel)
            {
                ExperimentRules.Check(reward.Task.Bandit!, ExperimentRules.Bandit, keys => TaskPath(keys[0]), reader);
                ExperimentRules.CheckMemory(reward.Task, loop, DataSource.Online, key => $"loop.{key}", TaskPath, reader);
            }
            if (CheckLabel(reward.Label, path, "rewards", labels, i, reader) is { } label)
                rewards.Add(new StudyReward(label, checkedTask));
        }
        return rewards;
    }

    /// <summary>
    /// A language-model task (length, preference) with an entry's overrides, checked as an experiment file's task is (its
    /// problems reported at the entry's key where the entry wrote it). Without prepare, goal mode needs its mode; with it,
    /// the prepared data gives it.
    /// </summary>
    private static TaskSpec CheckLanguageModelTask(TaskSpec task, StudyPreparation? preparation, string block, string folder,
        Func<string, string> taskPath, DocumentReader reader)
    {
        var local = new DocumentReader();
        var checkedTask = LanguageModelChecks.CheckTask(task, folder, local);
        foreach (var problem in local.Problems)
        {
            var where = problem.Path;
            if (where.StartsWith(block + ".", StringComparison.Ordinal))
            {
                // task.preference.gold_reward_model.path: the entry's key (gold_reward_model) where it wrote it, then the rest
                var rest = where[(block.Length + 1)..];
                var key = rest.Split('.')[0];
                where = taskPath(key) + rest[key.Length..];
            }
            reader.Add(where, problem.Problem, problem.Allowed);
        }
        if (preparation is null && checkedTask.Length is { Goal: "mode", ModeLength: null })
            reader.Add(taskPath("mode_length"), "missing: goal mode scores against a mode length",
                "a length in tokens (preftune preference-data prints the mode of the reference's samples), or a prepare block");
        if (preparation is not null && checkedTask.Length is { Dataset: not "" })
            reader.Add(taskPath("dataset"), "prepare builds each task's dataset", "remove dataset, or remove prepare");
        return checkedTask;
    }

    private static List<StudySweep> ReadSweeps(YamlNode? node, TaskSpec task, LoopSpec loop, DocumentReader reader)
    {
        if (node is null)
            return [];
        var sweeps = new List<StudySweep>();
        var labels = new Dictionary<string, int>();
        foreach (var (entry, i) in reader.List(node, "sweeps").Select((e, i) => (e, i)))
            if (ReadSweep(entry, $"sweeps[{i}]", task, loop, reader) is { } sweep
                && CheckLabel(sweep.Label, $"sweeps[{i}]", "sweeps", labels, i, reader) is not null)
                sweeps.Add(sweep);
        return sweeps;
    }

    /// <summary>One <c>sweeps[i]</c> entry; null when it cannot be expanded (its problems are recorded).</summary>
    private static StudySweep? ReadSweep(YamlNode node, string path, TaskSpec task, LoopSpec loop, DocumentReader reader)
    {
        var entry = reader.Block(node, path, new SweepEntry(), Sweep);
        if (node is not YamlMappingNode)
            return null;

        // The method: checked as an experiment file's methods[i] is.
        var methods = string.Join(", ", MethodRegistry.All.Select(m => m.Name).Order(StringComparer.Ordinal));
        var descriptor = entry.Method is null ? null : MethodRegistry.All.FirstOrDefault(m => m.Name == entry.Method);
        if (entry.Method is null)
            reader.Add($"{path}.method", "missing: the method to re-run", methods);
        else if (descriptor is null)
            reader.Add($"{path}.method", $"unknown method '{entry.Method}'", methods);
        else if (!descriptor.Axes.Supports(entry.Data))
            reader.Add($"{path}.data", $"{descriptor.Name} cannot train on {entry.Data.ToString().ToLowerInvariant()} data",
                string.Join(", ", ExperimentSchema.DataSources.Where(d => descriptor.Axes.Supports(d.Value)).Select(d => d.Key)));
        var parameters = descriptor is null
            ? []
            : reader.Block(entry.Parameters, $"{path}.parameters", new Dictionary<string, double>(),
                ExperimentSchema.Parameters(descriptor.Defaults.Keys));

        var field = entry.Field is null ? null : StudyValues.Fields.FirstOrDefault(f => string.Equals(f, entry.Field, StringComparison.OrdinalIgnoreCase));
        if (entry.Field is null)
            reader.Add($"{path}.field", "missing: the loop field to sweep", string.Join(", ", StudyValues.Fields));
        else if (field is null)
            reader.Add($"{path}.field", $"cannot sweep '{entry.Field}'", string.Join(", ", StudyValues.Fields));
        var values = ReadValues(entry.Values, $"{path}.values", field, reader);

        if (descriptor is null || field is null || values is null)
            return null;
        if (entry.Data == DataSource.Offline)
            ExperimentRules.Check(loop, ExperimentRules.Offline, _ => $"{path}.data", reader);
        foreach (var (value, j) in values.Select((v, j) => (v, j)))
            CheckValue(task, loop, field, value, $"{path}.values[{j}]", entry.Data, reader);
        ExperimentRules.CheckParameters(descriptor.Name, parameters, name => $"{path}.parameters.{name}", reader);

        var method = new MethodSpec { Name = descriptor.Name, Data = entry.Data, Parameters = parameters };
        return new StudySweep { Label = entry.Label ?? $"{descriptor.Name}-{field}", Method = method, Field = field, Values = values };
    }

    private static List<double>? ReadValues(YamlNode? node, string path, string? field, DocumentReader reader)
    {
        var allowed = field is null || StudyValues.IsInteger(field) ? "a list of whole numbers, e.g. [10, 20, 40, 80]" : "a list of numbers, e.g. [0.001, 0.003, 0.01]";
        if (node is null)
        {
            reader.Add(path, "missing: the values to sweep", allowed);
            return null;
        }
        var items = reader.List(node, path);
        if (items.Count == 0)
        {
            if (node is YamlSequenceNode)
                reader.Add(path, "the list is empty", allowed);
            return null;
        }
        var values = items.Select((item, j) => field is null || StudyValues.IsInteger(field)
            ? reader.Int(item, $"{path}[{j}]") is { } whole ? (double?)whole : null
            : reader.Number(item, $"{path}[{j}]")).ToList();
        foreach (var repeated in values.OfType<double>().GroupBy(v => v).Where(g => g.Count() > 1))
            reader.Add(path, $"{StudyValues.Format(repeated.Key)} appears {repeated.Count()} times", "distinct values");
        return values.All(v => v is not null) ? values.Select(v => v!.Value).ToList() : null;
    }

    /// <summary>
    /// Algorithm 1's rules for the loop with <paramref name="field"/> set to <paramref name="value"/>, reported at
    /// the value. Rules the study's loop already breaks are reported at the loop, not once per value.
    /// </summary>
    private static void CheckValue(TaskSpec task, LoopSpec loop, string field, double value, string path, DataSource data, DocumentReader reader)
    {
        var swept = StudyValues.Apply(loop, field, value);
        var rules = data == DataSource.Offline ? ExperimentRules.Loop.Concat(ExperimentRules.Offline) : ExperimentRules.Loop;
        var broken = rules.Where(r => r.IsBroken(swept) && !r.IsBroken(loop)).ToList();
        foreach (var rule in broken)
            reader.Add(path, $"{field} = {StudyValues.Format(value)}: {rule.Problem(swept)}", rule.Allowed);
        if (broken.Count == 0 && !rules.Any(r => r.IsBroken(swept)) && WholeIterations.IsBroken(swept))
            reader.Add(path, $"{field} = {StudyValues.Format(value)}: {WholeIterations.Problem(swept)}", WholeIterations.Allowed);
        if (ExperimentRules.Oversized(task, loop, data) is null)   // a study loop too large is reported at the loop, not once per value
            ExperimentRules.CheckMemory(task, swept, data, _ => path, key => $"task.bandit.{key}", reader);
    }

    private static string? CheckLabel(string? label, string path, string list, Dictionary<string, int> labels, int index, DocumentReader reader)
    {
        if (label is null)
        {
            reader.Add($"{path}.label", "missing: every entry needs a label (it names the report's plots and rows)", Labels);
            return null;
        }
        if (!SafeName().IsMatch(label))
        {
            reader.Add($"{path}.label", $"'{label}' cannot name a file", Labels);
            return null;
        }
        if (labels.TryGetValue(label, out var first))
        {
            reader.Add($"{path}.label", $"label '{label}' is already used by {list}[{first}]", $"a label unique within {list}");
            return null;
        }
        labels[label] = index;
        return label;
    }

    private static int StepsPerIteration(LoopSpec l) => Math.Max(1, l.T * l.B / Math.Max(1, l.M));

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SafeName();
}

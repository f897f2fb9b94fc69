using PrefTune.Messages;
using YamlDotNet.RepresentationModel;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>
/// The keys of an experiment file and the record field each one sets: the one place that maps the
/// file's snake_case names to <see cref="RunSpec"/>, <see cref="BanditSpec"/>, <see cref="LoopSpec"/>
/// and <see cref="MethodSpec"/>.
/// </summary>
internal static class ExperimentSchema
{
    /// <summary>The top level before the methods are expanded (they need the loop block, which may come later).</summary>
    public sealed record Document
    {
        public string? Name { get; init; }
        public string? Description { get; init; }
        public IReadOnlyList<int> Seeds { get; init; } = [1];
        public int TorchThreads { get; init; } = 1;
        public TaskSpec? Task { get; init; }
        public OptimizerSettings? Optimizer { get; init; }
        public RewardModelSpec? RewardModel { get; init; }
        public LoopSpec Loop { get; init; } = new();
        /// <summary>The loop block as written (its keys locate problems with the loop).</summary>
        public YamlNode? LoopNode { get; init; }
        public YamlNode? Methods { get; init; }
    }

    /// <summary>One entry of <c>methods</c>; parameters and loop overrides are read once the name is known.</summary>
    public sealed record MethodEntry
    {
        public string? Name { get; init; }
        public DataSource Data { get; init; } = DataSource.Online;
        public string? Label { get; init; }
        public YamlNode? Parameters { get; init; }
        public YamlNode? Loop { get; init; }
    }

    public static readonly IReadOnlyDictionary<string, DataSource> DataSources =
        new Dictionary<string, DataSource> { ["online"] = DataSource.Online, ["offline"] = DataSource.Offline };

    /// <summary>The bandit block: one key per <see cref="BanditSpec"/> property (the gpt policy's sizes too).</summary>
    public static readonly IReadOnlyDictionary<string, Field<BanditSpec>> Bandit = Field.Of<BanditSpec>();

    /// <summary>The length task's block, one key per <see cref="LengthSpec"/> property.</summary>
    public static readonly IReadOnlyDictionary<string, Field<LengthSpec>> Length = Field.Of<LengthSpec>();

    /// <summary>The preference task's block: its own keys, and gold_reward_model a reward_model-like block.</summary>
    public static readonly IReadOnlyDictionary<string, Field<PreferenceSpec>> Preference = new Dictionary<string, Field<PreferenceSpec>>(
        Field.Of<PreferenceSpec>(except: nameof(PreferenceSpec.GoldRewardModel)))
    {
        ["gold_reward_model"] = Field.Block<PreferenceSpec, RewardModelSpec>(p => p.GoldRewardModel ?? new RewardModelSpec(), Field.Of<RewardModelSpec>(),
            (p, v) => p with { GoldRewardModel = v }),
    };

    /// <summary>A language-model policy's block, one key per <see cref="LanguageModelSpec"/> property.</summary>
    public static readonly IReadOnlyDictionary<string, Field<LanguageModelSpec>> Model = Field.Of<LanguageModelSpec>();

    public static readonly IReadOnlyDictionary<string, Field<TaskSpec>> Task = new Dictionary<string, Field<TaskSpec>>
    {
        ["kind"] = Field.Text<TaskSpec>((s, v) => s with { Kind = v }),
        ["bandit"] = Field.Block<TaskSpec, BanditSpec>(s => s.Bandit ?? new BanditSpec(), Bandit, (s, v) => s with { Bandit = v }),
        ["length"] = Field.Block<TaskSpec, LengthSpec>(s => s.Length ?? new LengthSpec(), Length, (s, v) => s with { Length = v }),
        ["preference"] = Field.Block<TaskSpec, PreferenceSpec>(s => s.Preference ?? new PreferenceSpec(), Preference, (s, v) => s with { Preference = v }),
        ["model"] = Field.Block<TaskSpec, LanguageModelSpec>(s => s.Model ?? new LanguageModelSpec(), Model, (s, v) => s with { Model = v }),
    };

    /// <summary>The optimizer block, one key per <see cref="OptimizerSettings"/> property (the base rate is loop.learning_rate).</summary>
    public static readonly IReadOnlyDictionary<string, Field<OptimizerSettings>> Optimizer = Field.Of<OptimizerSettings>();

    /// <summary>The reward_model block, one key per <see cref="RewardModelSpec"/> property.</summary>
    public static readonly IReadOnlyDictionary<string, Field<RewardModelSpec>> RewardModel = Field.Of<RewardModelSpec>();

    /// <summary>Algorithm 1's knobs, one key per <see cref="LoopSpec"/> property; B, C, M, T are upper case as in the paper,
    /// lower case is accepted too.</summary>
    public static readonly IReadOnlyDictionary<string, Field<LoopSpec>> Loop = Field.Of<LoopSpec>(StringComparer.OrdinalIgnoreCase);

    public static readonly IReadOnlyDictionary<string, Field<MethodEntry>> Method = new Dictionary<string, Field<MethodEntry>>
    {
        ["name"] = Field.Text<MethodEntry>((m, v) => m with { Name = v }),
        ["data"] = Field.Choice<MethodEntry, DataSource>(DataSources, (m, v) => m with { Data = v }),
        ["label"] = Field.Text<MethodEntry>((m, v) => m with { Label = v }),
        ["parameters"] = Field.Node<MethodEntry>((m, v) => m with { Parameters = v }),
        ["loop"] = Field.Node<MethodEntry>((m, v) => m with { Loop = v }),
    };

    public static readonly IReadOnlyDictionary<string, Field<Document>> Top = new Dictionary<string, Field<Document>>
    {
        ["name"] = Field.Text<Document>((d, v) => d with { Name = v }),
        ["description"] = Field.Text<Document>((d, v) => d with { Description = v }),
        ["seeds"] = new((d, node, path, reader) => reader.IntList(node, path) is { } seeds ? d with { Seeds = seeds } : d),
        ["torch_threads"] = Field.Int<Document>((d, v) => d with { TorchThreads = v }),
        ["task"] = Field.Block<Document, TaskSpec>(d => d.Task ?? new TaskSpec { Kind = "" }, Task, (d, v) => d with { Task = v }),
        ["optimizer"] = Field.Block<Document, OptimizerSettings>(d => d.Optimizer ?? new OptimizerSettings(), Optimizer, (d, v) => d with { Optimizer = v }),
        ["reward_model"] = Field.Block<Document, RewardModelSpec>(d => d.RewardModel ?? new RewardModelSpec(), RewardModel, (d, v) => d with { RewardModel = v }),
        ["loop"] = new((d, node, path, reader) => d with { Loop = reader.Block(node, path, d.Loop, Loop), LoopNode = node }),
        ["methods"] = Field.Node<Document>((d, v) => d with { Methods = v }),
    };

    /// <summary>A method's hyperparameters: exactly the names in its registry defaults.</summary>
    public static IReadOnlyDictionary<string, Field<Dictionary<string, double>>> Parameters(IEnumerable<string> names) =>
        names.Order(StringComparer.Ordinal).ToDictionary(
            name => name,
            name => Field.Number<Dictionary<string, double>>((d, v) => { d[name] = v; return d; }));
}

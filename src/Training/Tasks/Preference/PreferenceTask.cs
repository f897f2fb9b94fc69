using System.Security.Cryptography;
using System.Text;
using PrefTune.Messages;
using PrefTune.Training.Datasets;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Training.Tasks.Preference;

/// <summary>
/// A user's preference data (PAPER.md, Problem 3, at small scale): the prompts of a dataset file in any format PrefTune
/// reads, answered by a causal language model (<see cref="LanguageModelFamily"/>), measured by a gold reward model the
/// Scorer reads (<see cref="GoldRewardModel"/>: it measures, a run never trains on it unless it names it as its
/// reward_model). A share of the distinct prompts is held out (<see cref="Split"/>): evaluations sample those, beside the
/// reference's responses to them (<see cref="ComparesWithReference"/>: win rate and gold reward increase), and offline
/// D_pref leaves their rows out. The dataset is read once, when the prompts are first asked for (the Orchestrator), the
/// model when a policy is built (the Sampler and the Learner).
/// </summary>
public sealed class PreferenceTask : LanguageModelTask, IPreferenceTask
{
    public static TaskKind Descriptor { get; } = new()
    {
        Name = "preference",
        Summary = "a user's preference data (PAPER.md, Problem 3): prompts and pairs from a dataset file (TRL, AlpacaFarm, UltraFeedback, HH, relabeled), "
            + "a causal LM answers, a gold reward model measures; held-out prompts give the win rate against the reference",
        Create = spec => new PreferenceTask(spec),
        PolicyOf = _ => LanguageModelFamily.Descriptor.Name,
    };

    /// <summary>What the dataset file gives: the training and held-out prompts, the held-out texts, and whether it has pairs.</summary>
    private sealed record DatasetPrompts(IReadOnlyList<Prompt> Train, IReadOnlyList<Prompt> HeldOut, HashSet<string> HeldOutTexts, bool PromptsOnly);

    private readonly PreferenceSpec _preference;
    private readonly Lazy<DatasetPrompts> _prompts;

    /// <exception cref="ArgumentException">A missing or invalid task.preference field (named).</exception>
    public PreferenceTask(TaskSpec spec) : base(spec)
    {
        if (spec.Kind != Descriptor.Name) throw new ArgumentException($"task.kind: expected '{Descriptor.Name}', got '{spec.Kind}'", nameof(spec));
        _preference = spec.Preference ?? throw new ArgumentException("task.preference: missing; a preference task needs its dataset and gold_reward_model");
        if (_preference.Dataset == "") throw new ArgumentException("task.preference.dataset: missing");
        if (!(_preference.HeldOut > 0 && _preference.HeldOut < 1))
            throw new ArgumentException($"task.preference.held_out: {_preference.HeldOut} is outside (0, 1)");
        _prompts = new(() => ReadPrompts(_preference, spec.Model ?? new LanguageModelSpec()));
    }

    /// <summary>The training prompts: the dataset's distinct prompts that are not held out, in file order, ids "p0", "p1", ...</summary>
    public override IReadOnlyList<Prompt> PromptPool(int seed) => _prompts.Value.Train;

    /// <summary>The held-out prompts, ids "h0", "h1", ...; the same for every seed.</summary>
    public IReadOnlyList<Prompt> EvaluationPrompts(int seed) => _prompts.Value.HeldOut;

    /// <exception cref="ArgumentException">The spec names none (the experiment file's checks say so first).</exception>
    public RewardModelSpec GoldRewardModel => _preference.GoldRewardModel is { Path: not "" } gold ? gold
        : throw new ArgumentException("task.preference.gold_reward_model.path: missing; the gold reward is a reward model");

    public bool ComparesWithReference => true;

    public bool IsHeldOut(string promptText) => _prompts.Value.HeldOutTexts.Contains(promptText);

    /// <summary>Whether the dataset holds prompts only (on-policy methods can use it; offline ones need pairs).</summary>
    public bool HoldsPromptsOnly => _prompts.Value.PromptsOnly;

    /// <exception cref="InvalidOperationException">Always: the gold reward is a model, read by the Scorer.</exception>
    public override double GoldReward(Rollout rollout) =>
        throw new InvalidOperationException($"the preference task's gold reward is the reward model {GoldRewardModel.Path}: the Scorer reads it, not the task");

    /// <summary>
    /// Which of <paramref name="distinct"/> are held out: the round(share x n) (at least 1, at most n - 1) whose text has the
    /// smallest SHA-256, so the split depends on the prompts alone, not on the seed, the method or the file's order.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 2 distinct prompts: nothing would be left to train or to evaluate on.</exception>
    public static HashSet<string> Split(IReadOnlyList<string> distinct, double share, string file)
    {
        if (distinct.Count < 2)
            throw new ArgumentException($"task.preference.dataset: {file} holds {distinct.Count} distinct prompt(s); a held-out split needs at least 2");
        var count = Math.Clamp((int)Math.Round(share * distinct.Count, MidpointRounding.AwayFromZero), 1, distinct.Count - 1);
        return distinct.OrderBy(t => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(t))), StringComparer.Ordinal)
            .Take(count).ToHashSet(StringComparer.Ordinal);
    }

    private static DatasetPrompts ReadPrompts(PreferenceSpec preference, LanguageModelSpec model)
    {
        var file = preference.Dataset;
        if (!File.Exists(file)) throw new ArgumentException($"task.preference.dataset: no such file {file}");
        var (format, examples) = PreferenceFormats.ReadAsync(file).GetAwaiter().GetResult();
        var template = new Lazy<PromptTemplate>(PreferenceRollouts.TemplateOf(model));
        // the prompt text each row is rendered to, as the offline D_pref reader renders it (so held-out rows match)
        var first = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var example in examples)
            first.TryAdd(example.Prompt(example.PromptMessages is null ? PromptTemplate.Plain : template.Value), example.Where);
        var texts = first.Keys.ToList();
        var heldOut = Split(texts, preference.HeldOut, file);
        return new(TextPrompts.Encode(texts.Where(t => !heldOut.Contains(t)).Select(t => (first[t], t)), model, "p"),
            TextPrompts.Encode(texts.Where(heldOut.Contains).Select(t => (first[t], t)), model, "h"),
            heldOut, format == PreferenceFormat.PromptOnly);
    }
}

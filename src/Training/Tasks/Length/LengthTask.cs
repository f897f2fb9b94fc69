using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks.Length;

/// <summary>
/// A length task (PAPER.md, Problem 2): prompts from a JSONL file, answered by a causal language model
/// (<see cref="LanguageModelFamily"/>), and a gold reward that depends only on the response length in tokens, the
/// stop token not counted (<see cref="Gold"/>: min, mode and skew in one place). The tokenizer and prompt file are read when the
/// prompts are first asked for (only the Orchestrator does), the model when a policy is built (the Sampler and the
/// Learner): the Scorer's gold reward needs neither.
/// </summary>
public sealed class LengthTask : LanguageModelTask
{
    /// <summary>Known values of <see cref="LengthSpec.Goal"/>.</summary>
    public static IReadOnlyList<string> Goals { get; } = ["min", "mode", "skew"];

    public static TaskKind Descriptor { get; } = new()
    {
        Name = "length",
        Summary = "the synthetic length task (PAPER.md, Problem 2): prompts from a file, a causal LM answers, gold reward -length (min, skew) or -|length - mode| (mode)",
        Create = spec => new LengthTask(spec),
        PolicyOf = _ => LanguageModelFamily.Descriptor.Name,
    };

    private readonly LengthSpec _length;
    private readonly Lazy<IReadOnlyList<Prompt>> _prompts;

    public LengthTask(TaskSpec spec) : base(spec)
    {
        if (spec.Kind != Descriptor.Name) throw new ArgumentException($"task.kind: expected '{Descriptor.Name}', got '{spec.Kind}'", nameof(spec));
        _length = spec.Length ?? new LengthSpec();
        if (!Goals.Contains(_length.Goal))
            throw new ArgumentException($"task.length.goal: unknown goal '{_length.Goal}'; known: {string.Join(", ", Goals)}");
        // A run scores against a fixed peak; only a dataset builder may leave it open and compute it from its samples.
        if (_length.Goal == "mode" && _length.ModeLength is null)
            throw new ArgumentException("task.length.mode_length: missing; goal mode scores against a mode length (preference-data records the one it computed)");
        _prompts = new(() => ReadPrompts(_length.Prompts, spec.Model ?? new LanguageModelSpec()));
    }

    /// <summary>The prompt file's prompts, in file order, ids "p0", "p1", ...; the same for every seed.</summary>
    public override IReadOnlyList<Prompt> PromptPool(int seed) => _prompts.Value;

    /// <summary>The goal's gold reward of the response's length in tokens, the stop token not counted (<see cref="Gold"/>).</summary>
    public override double GoldReward(Rollout rollout) => Gold(_length.Goal, rollout.ContentLength(), _length.ModeLength);

    /// <summary>
    /// The gold rules of the three length tasks (PAPER.md, Problem 2), written once: min and skew give -length (skew differs
    /// only in its preference data, <see cref="PreferenceDataset"/>); mode gives -|length - mode|, the "distance to mode"
    /// of the paper's figure.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown goal, or goal mode without a mode.</exception>
    public static double Gold(string goal, int length, int? mode) => goal switch
    {
        "min" or "skew" => -length,
        "mode" => -Math.Abs(length - (mode ?? throw new ArgumentException("task.length.mode_length: goal mode needs a mode length"))),
        _ => throw new ArgumentException($"task.length.goal: unknown goal '{goal}'; known: {string.Join(", ", Goals)}"),
    };

    /// <summary>The tokenizer a model spec names: its own file, or the model directory's tokenizer.json.</summary>
    /// <exception cref="ArgumentException">Neither exists (names task.model.tokenizer).</exception>
    public static string TokenizerPath(LanguageModelSpec model)
    {
        if (model.Tokenizer != "") return model.Tokenizer;
        var beside = System.IO.Path.Combine(model.Path, "tokenizer.json");
        return Directory.Exists(model.Path) && File.Exists(beside) ? beside
            : throw new ArgumentException($"task.model.tokenizer: missing; {model.Path} has no tokenizer.json beside it (a llama2.c checkpoint needs its tokenizer .bin named)");
    }

    /// <summary>
    /// Reads a JSONL prompt file, one {"prompt": "..."} per line (blank lines skipped), and encodes each prompt with the
    /// model's tokenizer, checked against the model's vocabulary and context (prompt + max_new_tokens).
    /// </summary>
    /// <exception cref="ArgumentException">A missing file, or a bad line (file and line named).</exception>
    public static IReadOnlyList<Prompt> ReadPrompts(string file, LanguageModelSpec model)
    {
        if (!File.Exists(file)) throw new ArgumentException($"task.length.prompts: no such file {file}");
        var prompts = TextPrompts.Encode(ReadLines(file), model);
        return prompts.Count > 0 ? prompts : throw new ArgumentException($"task.length.prompts: {file} holds no prompt");
    }

    /// <summary>The prompt file's {"prompt": "..."} lines, named by file and line.</summary>
    private static IEnumerable<(string Where, string Text)> ReadLines(string file)
    {
        var lineNumber = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var where = $"{file}, line {lineNumber}";
            string text;
            try
            {
                using var json = JsonDocument.Parse(line);
                text = json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.String
                    ? p.GetString()!
                    : throw new ArgumentException($"{where}: expected an object with a \"prompt\" string");
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"{where}: not valid JSON ({e.Message})");
            }
            yield return (where, text);
        }
    }
}

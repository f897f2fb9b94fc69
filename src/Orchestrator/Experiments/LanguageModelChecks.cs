using System.Collections.Concurrent;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Length;
using PrefTune.Training.Tasks.Preference;
using TorchSharp;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>
/// The checks of a task answered by a language model, run when the experiment file is read so that nothing starts on
/// a model, tokenizer or prompt file that cannot be used: every path resolved against the file's folder and recorded
/// whole, the model loaded once (every tensor's name, shape and dtype checked; the error names the file and tensor),
/// the tokenizer matched to its vocabulary, each prompt encoded and fitted into the context with max_new_tokens.
/// </summary>
internal static class LanguageModelChecks
{
    /// <summary>Models already loaded and found sound in this process, by path and last write: a study's grid reads one file.</summary>
    private static readonly ConcurrentDictionary<(string Path, DateTime Written, ModelHead Head), string?> Loaded = new();

    /// <summary>Preference tasks built by the checks, by their spec's JSON: each reads and encodes its dataset once, however
    /// many checks (prompts, the reward models' context, offline D_pref) and grid cells ask. Bounded: a study has a few.</summary>
    private static readonly ConcurrentDictionary<string, PreferenceTask> PreferenceTasksRead = new();

    private static PreferenceTask Built(TaskSpec task)
    {
        if (PreferenceTasksRead.Count > 64) PreferenceTasksRead.Clear();
        var file = task.Preference?.Dataset ?? "";
        var key = System.Text.Json.JsonSerializer.Serialize(task) + (File.Exists(file) ? File.GetLastWriteTimeUtc(file).Ticks : 0);
        return PreferenceTasksRead.GetOrAdd(key, _ => new PreferenceTask(task));
    }

    public static TaskSpec CheckTask(TaskSpec task, string folder, DocumentReader reader)
    {
        if (task.Kind == PreferenceTask.Descriptor.Name) return CheckPreferenceTask(task, folder, reader);
        if (task.Kind != LengthTask.Descriptor.Name) return task;
        var length = task.Length ?? new LengthSpec();
        if (!LengthTask.Goals.Contains(length.Goal))
            reader.Add("task.length.goal", $"unknown goal '{length.Goal}'", string.Join(", ", LengthTask.Goals));
        // Each goal's own key: a key the goal does not read is a mistake the user should hear about, not a silent no-op.
        if (length.ModeLength is not null && length.Goal != "mode")
            reader.Add("task.length.mode_length", $"goal {length.Goal} does not read it", "goal: mode, or remove mode_length");
        if (length.SkewTruncate is not null && length.Goal != "skew")
            reader.Add("task.length.skew_truncate", $"goal {length.Goal} does not read it", "goal: skew, or remove skew_truncate");
        if (length.ModeLength is < 0)
            reader.Add("task.length.mode_length", $"mode_length = {length.ModeLength} is below 0", "integers >= 0 (a length in tokens)");
        if (length.Goal == "skew" && length.SkewTruncate is null)
            reader.Add("task.length.skew_truncate", "missing: goal skew cuts its preference data's completions to at most this many tokens",
                "an integer >= 1, below max_new_tokens");
        else if (length.SkewTruncate is < 1)
            reader.Add("task.length.skew_truncate", $"skew_truncate = {length.SkewTruncate} is below 1", "integers >= 1, below max_new_tokens");
        if (task.Model is { } m && length.ModeLength > m.MaxNewTokens)
            reader.Add("task.length.mode_length", $"mode_length = {length.ModeLength} is above max_new_tokens = {m.MaxNewTokens}: no response can reach it",
                $"integers 0..{m.MaxNewTokens}");
        if (task.Model is { } n && length.SkewTruncate >= n.MaxNewTokens)
            reader.Add("task.length.skew_truncate", $"skew_truncate = {length.SkewTruncate} is not below max_new_tokens = {n.MaxNewTokens}: nothing would be cut",
                $"integers 1..{n.MaxNewTokens - 1}");
        if (CheckModel(task, folder, reader) is not { } model) return task;
        length = length with { Prompts = Resolve(length.Prompts, folder), Dataset = Resolve(length.Dataset, folder) };
        task = task with { Model = model, Length = length };
        if (!reader.HasProblemAt("task.model.path")) CheckPrompts(task, length, model, reader);
        return task;
    }

    /// <summary>
    /// task.model, for every task a language model answers: paths resolved (or found in the Hugging Face cache), the
    /// sampling settings in range, the model loaded as a causal LM and its stop ids read. Returns the resolved block, or
    /// null when there is none (reported).
    /// </summary>
    private static LanguageModelSpec? CheckModel(TaskSpec task, string folder, DocumentReader reader)
    {
        if (task.Model is not { } model)
        {
            reader.Add("task.model", $"missing: a {task.Kind} task needs the language model that answers its prompts",
                "a block with path: (a Hugging Face model directory or a llama2.c .bin)");
            return null;
        }
        model = model with { Path = ResolveModel(model.Path, folder, "task.model.path", reader), Tokenizer = ResolveModel(model.Tokenizer, folder, "task.model.tokenizer", reader) };

        if (model.MaxNewTokens < 1) reader.Add("task.model.max_new_tokens", $"max_new_tokens = {model.MaxNewTokens} is below 1", "integers >= 1");
        if (model.MaxBatch < 1) reader.Add("task.model.max_batch", $"max_batch = {model.MaxBatch} is below 1", "integers >= 1");
        if (model.TopK < 0) reader.Add("task.model.top_k", $"top_k = {model.TopK} is below 0", "0 (every token) or a positive count");
        if (!(model.TopP > 0 && model.TopP <= 1)) reader.Add("task.model.top_p", $"top_p = {model.TopP} is outside (0, 1]", "numbers in (0, 1]; 1 keeps every token");
        try { ComputeDevice.Resolve(model.Device, null); }
        catch (ArgumentException e) { reader.Add("task.model.device", e.Message, "cpu, or cuda with the CUDA build"); }
        if (model.Path == "")
        {
            if (!reader.HasProblemAt("task.model.path"))   // an org/name found nowhere is already named
                reader.Add("task.model.path", "missing", "a Hugging Face model directory or a llama2.c checkpoint (.bin)");
            return model;
        }
        if (LoadProblem(model.Path) is { } problem)
        {
            reader.Add("task.model.path", problem, "a Hugging Face Llama or GPT-NeoX directory, or a llama2.c checkpoint");
            return model;
        }
        var config = Checkpoints.ReadConfig(model.Path);
        try { LanguageModelFamily.StopIdsOf(model, config); }
        catch (ArgumentException e) { reader.Add("task.model.stop_ids", e.Message.Replace("task.model.stop_ids: ", ""), "ids separated by commas, or none"); }
        return model;
    }

    /// <summary>task.length.prompts: the file must read and each prompt encode and fit the model's context.</summary>
    private static void CheckPrompts(TaskSpec task, LengthSpec length, LanguageModelSpec model, DocumentReader reader)
    {
        if (model.Path == "") return;
        if (length.Prompts == "")
        {
            reader.Add("task.length.prompts", "missing", "a JSONL file, one {\"prompt\": \"...\"} per line");
            return;
        }
        try
        {
            LengthTask.ReadPrompts(length.Prompts, model);
        }
        catch (ModelLoadException e)
        {
            reader.Add("task.model.tokenizer", e.Message, "the model's tokenizer.json or llama2.c tokenizer .bin");
        }
        catch (ArgumentException e)
        {
            reader.Add(e.Message.StartsWith("task.model.tokenizer", StringComparison.Ordinal) ? "task.model.tokenizer" : "task.length.prompts",
                e.Message.Replace("task.model.tokenizer: ", "").Replace("task.length.prompts: ", ""));
        }
    }

    /// <summary>
    /// A preference task: task.model as every language-model task's; task.preference.dataset must read (any format
    /// PrefTune knows) with at least 2 distinct prompts, each encoding and fitting the context; held_out in (0, 1); the
    /// gold reward model checked as a reward_model block is.
    /// </summary>
    private static TaskSpec CheckPreferenceTask(TaskSpec task, string folder, DocumentReader reader)
    {
        var preference = task.Preference ?? new PreferenceSpec();
        const string Dataset = "a .jsonl or .parquet file: TRL's standard or conversational form, prompt-only, AlpacaFarm, UltraFeedback, Anthropic HH "
            + "or the relabeled format (preftune data FILE says which it is)";
        if (!(preference.HeldOut > 0 && preference.HeldOut < 1))
            reader.Add("task.preference.held_out", $"held_out = {preference.HeldOut} is outside (0, 1)", "a share such as 0.25");
        if (CheckModel(task, folder, reader) is not { } model) return task;
        preference = preference with { Dataset = Resolve(preference.Dataset, folder) };
        task = task with { Model = model, Preference = preference };
        if (preference.GoldRewardModel is { } gold)
            task = task with { Preference = preference with { GoldRewardModel = CheckRewardModel(gold, task, folder, reader, "task.preference.gold_reward_model") } };
        else
            reader.Add("task.preference.gold_reward_model", "missing: the gold reward that measures every run is a reward model",
                "a block with path: a sequence-classification model directory (as train-rm writes)");
        if (preference.Dataset == "")
        {
            reader.Add("task.preference.dataset", "missing", Dataset);
            return task;
        }
        if (model.Path == "" || reader.HasProblemAt("task.model.path") || reader.HasProblemAt("task.preference.held_out")) return task;
        try
        {
            var built = Built(task);
            _ = built.PromptPool(0).Count + built.EvaluationPrompts(0).Count;
        }
        catch (ModelLoadException e)
        {
            reader.Add("task.model.tokenizer", e.Message, "the model's tokenizer.json or llama2.c tokenizer .bin");
        }
        catch (ArgumentException e)
        {
            var key = e.Message.StartsWith("task.model.tokenizer", StringComparison.Ordinal) ? "task.model.tokenizer" : "task.preference.dataset";
            reader.Add(key, e.Message.Replace(key + ": ", ""), key == "task.preference.dataset" ? Dataset : null);
        }
        return task;
    }

    /// <summary>
    /// The pairs file offline methods read (task.length.dataset, task.preference.dataset), when set: it must read and every
    /// row convert to a response of the policy (the reader's file, row and column reported at the field). Returns its
    /// number of pairs (a preference task's without its held-out prompts' rows; 0 for a preference task's prompt-only file,
    /// which only on-policy methods can use), or null when there is no file or it cannot be read (or the model cannot:
    /// task.model's checks report that).
    /// </summary>
    public static int? CheckDataset(TaskSpec task, DocumentReader reader)
    {
        if (PreferenceTasks.PairsFile(task) is not { } file || task.Model is not { Path: not "" } model || LoadProblem(model.Path) is not null)
            return null;
        var key = $"task.{task.Kind}.dataset";
        if (reader.HasProblemAt(key)) return null;   // it did not read as the task's prompts already
        try
        {
            Func<string, bool>? keep = null;   // a length task trains on every row
            if (task.Kind == PreferenceTask.Descriptor.Name)
            {
                var built = Built(task);
                if (built.HoldsPromptsOnly) return 0;
                keep = prompt => !built.IsHeldOut(prompt);
            }
            // the same conversion the run makes, so a row the run would refuse is refused now
            return PreferenceRollouts.ReadAsync(file, model, Guid.Empty, keep).GetAwaiter().GetResult().Count / 2;
        }
        catch (ModelLoadException)
        {
            return null;   // the tokenizer's problem, reported at task.model.tokenizer
        }
        catch (ArgumentException e) when (e.Message.StartsWith("task.model.", StringComparison.Ordinal))
        {
            return null;   // reported at the task.model key it names
        }
        catch (ArgumentException e)
        {
            reader.Add(key, e.Message,
                "a .jsonl or .parquet file of pairs: the relabeled format preftune preference-data writes (prompt, y_w, y_l, y_w_score, y_l_score, score_diff, y_ref), "
                + "or TRL's standard or conversational form, AlpacaFarm, UltraFeedback or Anthropic HH (preftune data FILE says which it is)");
            return null;
        }
    }

    /// <summary>
    /// The reward_model block, paths resolved like the task's: the model must load as a sequence classifier
    /// (<c>...ForSequenceClassification</c>), its tokenizer (the one named, else the model directory's) must exist and
    /// fit its vocabulary, and without a tokenizer its vocabulary must cover the policy's, whose ids it then reads as
    /// they are. The device must be one this build has.
    /// </summary>
    public static RewardModelSpec CheckRewardModel(RewardModelSpec model, TaskSpec task, string folder, DocumentReader reader, string key = "reward_model")
    {
        model = model with { Path = ResolveModel(model.Path, folder, key + ".path", reader), Tokenizer = ResolveModel(model.Tokenizer, folder, key + ".tokenizer", reader) };
        try { ComputeDevice.Resolve(model.Device, null); }
        catch (ArgumentException e) { reader.Add(key + ".device", e.Message, "cpu, or cuda with the CUDA build"); }
        const string Classifier = "a Hugging Face directory of a sequence-classification model (LlamaForSequenceClassification, GPTNeoXForSequenceClassification)";
        if (model.Path == "")
        {
            if (!reader.HasProblemAt(key + ".path")) reader.Add(key + ".path", "missing", Classifier);
            return model;
        }
        if (LoadProblem(model.Path, ModelHead.SequenceClassification) is { } problem)
        {
            reader.Add(key + ".path", problem, Classifier);
            return model;
        }
        var config = Checkpoints.ReadConfig(model.Path);
        if (config.NumLabels != 1)
        {
            reader.Add(key + ".path", $"{model.Path}: a classifier with {config.NumLabels} labels (config.json); a reward model's head gives one scalar score",
                "a sequence classifier with num_labels 1, as train-rm writes");
            return model;
        }
        var tokenizerFile = RewardModelScorer.TokenizerFile(model);
        if (tokenizerFile is not null)
        {
            try
            {
                using var tokenizer = TextTokenizers.Load(tokenizerFile);
                TokenizerChecks.EnsureFits(tokenizer, config, tokenizerFile);
            }
            catch (ModelLoadException e)
            {
                reader.Add(key + ".tokenizer", e.Message, "the reward model's tokenizer.json or llama2.c tokenizer .bin");
            }
        }
        else if (task.Model is { Path: not "" } policy && PolicyVocabulary(policy) is { } vocabulary && vocabulary > config.VocabSize)
        {
            reader.Add(key + ".tokenizer",
                $"missing: {model.Path} has no tokenizer.json, so it would read the policy's ids as they are, but its vocabulary of {config.VocabSize} "
                + $"does not cover the policy's {vocabulary}", "the reward model's tokenizer.json or llama2.c tokenizer .bin");
        }
        else if (LongestResponse(task) is { } longest && longest > config.MaxPositions)
        {
            // the reward model reads the policy's ids as they are: the longest prompt with a whole response must fit its context
            reader.Add(key + ".path",
                $"{model.Path}: its context of {config.MaxPositions} tokens is shorter than the longest prompt with max_new_tokens = {task.Model!.MaxNewTokens} ({longest} tokens)",
                "a reward model with a longer context, shorter prompts, or a lower task.model.max_new_tokens");
        }
        return model;
    }

    /// <summary>The longest prompt's tokens plus max_new_tokens, or null when the prompts cannot be read (the task's checks say why).</summary>
    private static int? LongestResponse(TaskSpec task)
    {
        if (task.Model is not { Path: not "" } model) return null;
        try
        {
            IReadOnlyList<Messages.Prompt>? prompts = null;
            if (task.Length is { Prompts: not "" } length)
                prompts = LengthTask.ReadPrompts(length.Prompts, model);
            else if (task.Kind == PreferenceTask.Descriptor.Name && task.Preference is { Dataset: not "" })
            {
                var built = Built(task);
                prompts = [.. built.PromptPool(0), .. built.EvaluationPrompts(0)];
            }
            return prompts?.Max(p => p.Tokens.Length) + model.MaxNewTokens;
        }
        catch (Exception e) when (e is ArgumentException or ModelLoadException or InvalidOperationException) { return null; }
    }

    /// <summary>The policy model's vocabulary size, or null when it cannot be read (the task's own checks report that).</summary>
    private static int? PolicyVocabulary(LanguageModelSpec policy)
    {
        try { return Checkpoints.ReadConfig(policy.Path).VocabSize; }
        catch (ModelLoadException) { return null; }
    }

    /// <summary>A model or tokenizer path resolved like <see cref="Resolve"/>, or an <c>org/name</c> found in the local Hugging
    /// Face cache (<see cref="ModelReferences"/>); one found nowhere is an error at <paramref name="key"/> naming the places looked at.</summary>
    private static string ResolveModel(string path, string folder, string key, DocumentReader reader)
    {
        try { return ModelReferences.Resolve(path, folder); }
        catch (ModelReferenceException e)
        {
            reader.Add(key, e.Message, "a model directory or file (relative to the experiment file), or org/name in the Hugging Face cache");
            return "";
        }
    }

    /// <summary>A path as written, or under <paramref name="folder"/> when relative; empty stays empty.</summary>
    public static string Resolve(string path, string folder) =>
        path == "" || Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(folder, path));

    /// <summary>Why the model cannot be loaded (the loader's message: file and tensor) or is not the <paramref name="head"/>
    /// asked for (a policy generates: a causal LM; a reward model scores: a sequence classifier), or null when it serves.</summary>
    private static string? LoadProblem(string path, ModelHead head = ModelHead.CausalLm)
    {
        var written = Directory.Exists(path) ? Directory.GetLastWriteTimeUtc(path) : File.GetLastWriteTimeUtc(path);
        return Loaded.GetOrAdd((path, written, head), _ =>
        {
            try
            {
                using var scope = torch.NewDisposeScope();
                using var model = Checkpoints.Load(path, torch.CPU);
                return model.Config.Head == head ? null
                    : head == ModelHead.CausalLm ? $"{path}: {model.Config.Architecture} is a sequence classifier, not a causal LM that generates"
                    : $"{path}: {model.Config.Architecture} is a causal LM, not a sequence classifier that scores (a reward model is a ...ForSequenceClassification)";
            }
            catch (ModelLoadException e)
            {
                return e.Message;
            }
        });
    }
}

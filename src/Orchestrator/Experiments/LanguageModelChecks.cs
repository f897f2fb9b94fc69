using System.Collections.Concurrent;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks.Length;
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
    private static readonly ConcurrentDictionary<(string Path, DateTime Written), string?> Loaded = new();

    public static TaskSpec CheckTask(TaskSpec task, string folder, DocumentReader reader)
    {
        if (task.Kind != LengthTask.Descriptor.Name) return task;
        var length = task.Length ?? new LengthSpec();
        if (!LengthTask.Goals.Contains(length.Goal))
            reader.Add("task.length.goal", $"unknown goal '{length.Goal}'", string.Join(", ", LengthTask.Goals));
        if (task.Model is not { } model)
        {
            reader.Add("task.model", "missing: a length task needs the language model that answers its prompts",
                "a block with path: (a Hugging Face model directory or a llama2.c .bin)");
            return task;
        }
        model = model with { Path = Resolve(model.Path, folder), Tokenizer = Resolve(model.Tokenizer, folder) };
        length = length with { Prompts = Resolve(length.Prompts, folder) };
        task = task with { Model = model, Length = length };

        if (model.MaxNewTokens < 1) reader.Add("task.model.max_new_tokens", $"max_new_tokens = {model.MaxNewTokens} is below 1", "integers >= 1");
        if (model.MaxBatch < 1) reader.Add("task.model.max_batch", $"max_batch = {model.MaxBatch} is below 1", "integers >= 1");
        if (model.TopK < 0) reader.Add("task.model.top_k", $"top_k = {model.TopK} is below 0", "0 (every token) or a positive count");
        if (!(model.TopP > 0 && model.TopP <= 1)) reader.Add("task.model.top_p", $"top_p = {model.TopP} is outside (0, 1]", "numbers in (0, 1]; 1 keeps every token");
        try { ComputeDevice.Resolve(model.Device, null); }
        catch (ArgumentException e) { reader.Add("task.model.device", e.Message, "cpu, or cuda with the CUDA build"); }
        if (model.Path == "")
        {
            reader.Add("task.model.path", "missing", "a Hugging Face model directory or a llama2.c checkpoint (.bin)");
            return task;
        }
        if (LoadProblem(model.Path) is { } problem)
        {
            reader.Add("task.model.path", problem, "a Hugging Face Llama or GPT-NeoX directory, or a llama2.c checkpoint");
            return task;
        }
        var config = Checkpoints.ReadConfig(model.Path);
        try { LanguageModelFamily.StopIdsOf(model, config); }
        catch (ArgumentException e) { reader.Add("task.model.stop_ids", e.Message.Replace("task.model.stop_ids: ", ""), "ids separated by commas, or none"); }
        if (length.Prompts == "")
        {
            reader.Add("task.length.prompts", "missing", "a JSONL file, one {\"prompt\": \"...\"} per line");
            return task;
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
        return task;
    }

    /// <summary>The reward_model block: its paths resolved like the task's. (What the Scorer can serve is checked there.)</summary>
    public static RewardModelSpec CheckRewardModel(RewardModelSpec model, TaskSpec task, string folder, DocumentReader reader)
    {
        if (model.Path == "")
            reader.Add("reward_model.path", "missing", "a Hugging Face directory of a sequence-classification model");
        return model with { Path = Resolve(model.Path, folder), Tokenizer = Resolve(model.Tokenizer, folder) };
    }

    /// <summary>A path as written, or under <paramref name="folder"/> when relative; empty stays empty.</summary>
    public static string Resolve(string path, string folder) =>
        path == "" || Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(folder, path));

    /// <summary>Why the model cannot be loaded (the loader's message: file and tensor), or null when it loads.</summary>
    private static string? LoadProblem(string path)
    {
        var written = Directory.Exists(path) ? Directory.GetLastWriteTimeUtc(path) : File.GetLastWriteTimeUtc(path);
        return Loaded.GetOrAdd((path, written), _ =>
        {
            try
            {
                using var scope = torch.NewDisposeScope();
                using var model = Checkpoints.Load(path, torch.CPU);
                return model.Config.Head == ModelHead.CausalLm ? null : $"{path}: {model.Config.Architecture} is a sequence classifier, not a causal LM that generates";
            }
            catch (ModelLoadException e)
            {
                return e.Message;
            }
        });
    }
}

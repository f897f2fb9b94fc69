using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>What a model is trained from: the data file, the model it starts from and that model's tokenizer.</summary>
/// <param name="Tokenizer">tokenizer.json or a llama2.c tokenizer .bin; empty: the model directory's tokenizer.json.</param>
public sealed record TrainingSource(string Dataset, string Model, string Tokenizer = "", string? Device = null, int Threads = 1);

/// <summary>
/// The Hugging Face directory that a trained model is written as (by <see cref="FineTuningJob"/> and
/// <see cref="RewardModelJob"/>): config.json and model.safetensors, the tokenizer files of the model it started from,
/// metrics.jsonl (one line per step and evaluation), summary.json (the recorded fact) and preftune.json (provenance).
/// Both jobs write it here so that the two directories cannot drift apart in layout.
/// </summary>
public static class TrainedModelDirectory
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The tokenizer file the data is encoded with and the tokenizer files to copy beside the trained model.</summary>
    /// <param name="data">What the data file is called in the message: "data", "dataset".</param>
    /// <exception cref="ArgumentException">No --tokenizer, and no tokenizer.json beside the model.</exception>
    public static (string Tokenizer, IReadOnlyList<(string From, string Name)> Files) TokenizerOf(TrainingSource source, string data)
    {
        var spec = new LanguageModelSpec { Path = source.Model, Tokenizer = source.Tokenizer };
        var files = HfExport.TokenizerFilesOf(spec);
        var tokenizer = spec.Tokenizer != "" ? spec.Tokenizer
            : files.FirstOrDefault(f => f.Name == "tokenizer.json").From
            ?? throw new ArgumentException($"--tokenizer: missing; {source.Model} has no tokenizer.json beside it and the {data} is text");
        return (tokenizer, files);
    }

    /// <summary>The model from <paramref name="source"/> on its device, libtorch's threads set first (they bind the
    /// results' reproducibility).</summary>
    public static LanguageModel Load(TrainingSource source)
    {
        TorchRuntime.UseThreads(source.Threads);
        return Checkpoints.Load(source.Model, ComputeDevice.Resolve(source.Device));
    }

    /// <summary>Writes the weights, the tokenizer files and metrics.jsonl into <paramref name="output"/>.</summary>
    /// <returns>The SHA-256 of model.safetensors, which the fact records.</returns>
    public static string WriteModel(LanguageModel model, string output, IEnumerable<(string From, string Name)> tokenizerFiles, IEnumerable<string> metricsLines)
    {
        HfExport.EnsureEmptyOrAbsent(output);   // again: training took a while, and someone may have written there since
        Checkpoints.SaveHf(model, output);
        foreach (var (from, name) in tokenizerFiles)
            File.Copy(from, Path.Combine(output, name), overwrite: false);
        File.WriteAllLines(Path.Combine(output, "metrics.jsonl"), metricsLines);
        return Sha256(Path.Combine(output, "model.safetensors"));
    }

    /// <summary>Writes summary.json (<paramref name="fact"/>) and preftune.json, the provenance that names the model
    /// by <paramref name="idKey"/> and says what it was trained from.</summary>
    public static void WriteRecord<TFact>(string output, TFact fact, string idKey, Guid id, TrainingSource source,
        string datasetSha256, string weightsSha256, string architecture)
    {
        File.WriteAllText(Path.Combine(output, "summary.json"), JsonSerializer.Serialize(fact, Indented));
        File.WriteAllText(Path.Combine(output, HfExport.ProvenanceFile), new JsonObject
        {
            [idKey] = id.ToString(),
            ["weights_sha256"] = weightsSha256,
            ["base_model"] = source.Model,
            ["dataset"] = source.Dataset,
            ["dataset_sha256"] = datasetSha256,
            ["architecture"] = architecture,
        }.ToJsonString(Indented));
    }

    public static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

/// <summary>metrics.jsonl as the training goes: each progress record as one line (in the job's names, TRL's), and
/// handed on to the caller's onProgress.</summary>
public sealed class MetricsLog(Func<object, JsonObject> line, Action<object>? onProgress)
{
    private readonly List<string> lines = [];

    public IReadOnlyList<string> Lines => lines;

    public void Record(object progress)
    {
        lines.Add(line(progress).ToJsonString());
        onProgress?.Invoke(progress);
    }
}

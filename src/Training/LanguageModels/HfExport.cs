using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Training.Policies;

namespace PrefTune.Training.LanguageModels;

/// <summary>Where exported weights came from, written as preftune.json beside them.</summary>
/// <param name="RunId">The run that published the checkpoint.</param>
/// <param name="Version">Its policy version.</param>
public sealed record ExportSource(Guid RunId, int Version);

/// <summary>What an export wrote: the directory, its files in order, and the SHA-256 of the weights it read.</summary>
public sealed record ExportResult(string Directory, IReadOnlyList<string> Files, string WeightsSha256);

/// <summary>
/// A language-model policy checkpoint (<see cref="PolicyModel.SaveWeights"/> bytes, keys <c>lm.</c> + Hugging Face's
/// names) written as a Hugging Face model directory that transformers (and <see cref="Checkpoints.Load"/>) reads:
/// config.json, generation_config.json, model.safetensors, the base model's tokenizer files, and preftune.json saying
/// which run, version and base model the weights come from. The policy is rebuilt from the base model the run's spec
/// names, so its architecture and config are the ones the run trained.
/// </summary>
public static class HfExport
{
    /// <summary>The tokenizer files a Hugging Face model directory may carry; each is copied when the base has it.</summary>
    public static readonly IReadOnlyList<string> HfTokenizerFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    public const string ProvenanceFile = "preftune.json";

    /// <summary>
    /// Writes <paramref name="weights"/> (a policy checkpoint of the model <paramref name="spec"/> names) to
    /// <paramref name="directory"/>, which must not exist or be empty: an export never overwrites or removes anything.
    /// Everything that can fail on the input (the base model, the weights' shapes) is checked before the first file is
    /// written.
    /// </summary>
    /// <exception cref="ArgumentException">The directory is not empty, or the weights do not fit the base model.</exception>
    /// <exception cref="ModelLoadException">The base model or its tokenizer cannot be read (names the file).</exception>
    public static ExportResult Write(LanguageModelSpec spec, byte[] weights, string directory, ExportSource source)
    {
        using var stream = new MemoryStream(weights, writable: false);
        return Write(spec, stream, Convert.ToHexStringLower(SHA256.HashData(weights)), directory, source);
    }

    /// <summary><see cref="Write(LanguageModelSpec, byte[], string, ExportSource)"/> with the weights streamed from
    /// <paramref name="weights"/> (a checkpoint store's verified stream: it is read to its end, so its hash is checked,
    /// before the first file is written), <paramref name="sha256"/> being their hash.</summary>
    public static ExportResult Write(LanguageModelSpec spec, Stream weights, string sha256, string directory, ExportSource source)
    {
        EnsureEmptyOrAbsent(directory);
        var tokenizerFiles = TokenizerFilesOf(spec);
        // On the CPU whatever device the run used: the weights are written from there anyway, and an export must not
        // need the run's GPU.
        var family = new LanguageModelFamily(spec with { Device = "cpu" });
        using var policy = (LanguageModelPolicy)family.CreatePolicy(seed: 0);
        try
        {
            policy.LoadWeights(weights);
            weights.CopyTo(Stream.Null);   // the rest (none, for whole weights): a damaged checkpoint fails here, not later
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"checkpoint {sha256} (run {source.RunId}, version {source.Version}): its weights do not fit "
                + $"the base model {spec.Path} ({e.Message})", e);
        }

        EnsureEmptyOrAbsent(directory);   // again: loading took a while, and someone may have written there since
        Checkpoints.SaveHf(policy.Model, directory);
        var written = new List<string> { "config.json", "generation_config.json", "model.safetensors" };
        foreach (var (from, name) in tokenizerFiles)
        {
            File.Copy(from, Path.Combine(directory, name), overwrite: false);
            written.Add(name);
        }
        var provenance = new JsonObject
        {
            ["run_id"] = source.RunId.ToString(),
            ["version"] = source.Version,
            ["weights_sha256"] = sha256,
            ["base_model"] = spec.Path,
            ["tokenizer"] = tokenizerFiles.Count == 0 ? null : spec.Tokenizer == "" ? spec.Path : spec.Tokenizer,
            // a llama2.c tokenizer is no file transformers reads: say which copied file it is, so the directory is usable
            ["tokenizer_files"] = new JsonArray(tokenizerFiles.Select(f => (JsonNode)f.Name).ToArray()),
            ["architecture"] = policy.Model.Config.Architecture,
        };
        File.WriteAllText(Path.Combine(directory, ProvenanceFile), provenance.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        written.Add(ProvenanceFile);
        return new ExportResult(directory, written, sha256);
    }

    /// <summary>The tokenizer files to copy, as (source, name in the export). The spec's tokenizer when it names one
    /// (a tokenizer.json, with its tokenizer_config.json and special_tokens_map.json beside it, or a llama2.c .bin under
    /// its own name), else the Hugging Face base directory's; none for a llama2.c base without a tokenizer.</summary>
    /// <exception cref="ModelLoadException">The spec names a tokenizer file that is not there.</exception>
    public static IReadOnlyList<(string From, string Name)> TokenizerFilesOf(LanguageModelSpec spec)
    {
        if (spec.Tokenizer != "")
        {
            if (Directory.Exists(spec.Tokenizer)) return HfFilesIn(spec.Tokenizer);
            if (!File.Exists(spec.Tokenizer)) throw new ModelLoadException(spec.Tokenizer, null, "no such tokenizer file (the run's task.model.tokenizer)");
            if (!spec.Tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                return [(spec.Tokenizer, Path.GetFileName(spec.Tokenizer))];
            var folder = Path.GetDirectoryName(Path.GetFullPath(spec.Tokenizer))!;
            return [(spec.Tokenizer, "tokenizer.json"), .. HfFilesIn(folder).Where(f => f.Name != "tokenizer.json")];
        }
        return Directory.Exists(spec.Path) ? HfFilesIn(spec.Path) : [];
    }

    private static List<(string From, string Name)> HfFilesIn(string folder) =>
        HfTokenizerFiles.Select(name => (From: Path.Combine(folder, name), Name: name)).Where(f => File.Exists(f.From)).ToList();

    /// <summary>Refuses a file, or a directory with anything in it (hidden files too): what is there is the user's.</summary>
    /// <exception cref="ArgumentException">Names the path and the first entry found.</exception>
    public static void EnsureEmptyOrAbsent(string directory)
    {
        if (File.Exists(directory))
            throw new ArgumentException($"{directory} is a file: export writes a new (or empty) directory and never overwrites");
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).FirstOrDefault() is { } first)
            throw new ArgumentException($"{directory} is not empty (it holds {Path.GetFileName(first)}): export writes only into a new "
                + "or empty directory and never overwrites or removes what is there; choose another --output");
    }
}

using System.Security.Cryptography;
using System.Text.Json.Nodes;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>What <see cref="PreferenceDataJob"/> wrote and recorded.</summary>
public sealed record PreparedDataset(PreferenceDatasetBuilt Fact, string Folder, LengthHistogram Histogram)
{
    /// <summary>The pairs file offline methods and train-rm read.</summary>
    public string PairsFile => Path.Combine(Folder, PreferenceDataJob.PairsJsonl);
}

/// <summary>
/// The preference data of a length task (<see cref="PreferenceDataset"/>: C responses per prompt from the task's reference,
/// paired by its gold rule) written to a folder (pairs.jsonl, optionally pairs.parquet, report.json with the lengths'
/// histogram, histogram.png) and recorded as <see cref="PreferenceDatasetBuilt"/> on a stream of its own. `preftune
/// preference-data` and a study's preparation both make their data here.
/// </summary>
public static class PreferenceDataJob
{
    public const string PairsJsonl = "pairs.jsonl";
    public const string PairsParquet = "pairs.parquet";

    /// <param name="task">A length task whose paths are resolved (as an experiment file's checks leave them).</param>
    /// <param name="output">A new or empty folder: checked before and after sampling, never written over.</param>
    public static async Task<PreparedDataset> WriteAsync(TaskSpec task, PreferenceDatasetSettings settings, bool parquet, string output,
        string? sourceName, EventJournal journal, CancellationToken ct)
    {
        if (task.Kind != LengthTask.Descriptor.Name || task.Model is not { } model || task.Length is not { } length)
            throw new ArgumentException($"task.kind is {task.Kind}; preference data is built for a length task");
        output = Path.GetFullPath(output);
        EnsureEmptyOrAbsent(output);
        var built = PreferenceDataset.Build(task, settings);
        EnsureEmptyOrAbsent(output);   // again: sampling took a while
        Directory.CreateDirectory(output);

        var files = new List<string> { PairsJsonl };
        PreferenceDataFiles.WriteJsonl(Path.Combine(output, PairsJsonl), built.Rows);
        if (parquet)
        {
            await PreferenceDataFiles.WriteParquetAsync(Path.Combine(output, PairsParquet), built.Rows, ct);
            files.Add(PairsParquet);
        }
        var histogram = LengthHistogram.Of(built.Lengths);
        var report = new JsonObject
        {
            ["goal"] = length.Goal, ["mode_length"] = built.ModeLength, ["skew_truncate"] = length.SkewTruncate,
            ["prompts"] = built.PromptCount, ["responses_per_prompt"] = settings.Responses, ["seed"] = settings.Seed,
            ["keep_ties"] = settings.KeepTies, ["pairs"] = built.Rows.Count,
            ["length_histogram"] = new JsonObject
            {
                ["bin_width"] = histogram.BinWidth,
                ["counts"] = new JsonArray([.. histogram.Counts.Select(c => (JsonNode)c)]),
                ["text"] = new JsonArray([.. histogram.Lines().Select(l => (JsonNode)l)]),
            },
        };
        await File.WriteAllTextAsync(Path.Combine(output, "report.json"), report.ToJsonString(new() { WriteIndented = true }), ct);
        files.Add("report.json");
        Reporting.LengthHistogramPlot.Save(histogram, length.Goal, Path.Combine(output, "histogram.png"));
        files.Add("histogram.png");

        var fact = new PreferenceDatasetBuilt
        {
            DatasetId = NewId.NextGuid(), BuiltAt = DateTimeOffset.UtcNow, SourceName = sourceName,
            ModelPath = model.Path, Tokenizer = LengthTask.TokenizerPath(model), Prompts = length.Prompts, PromptCount = built.PromptCount,
            Goal = length.Goal, ModeLength = built.ModeLength, SkewTruncate = length.SkewTruncate, Seed = settings.Seed,
            ResponsesPerPrompt = settings.Responses, KeepTies = settings.KeepTies, Pairs = built.Rows.Count,
            Files = files.Select(f => Describe(output, f)).ToList(),
        };
        await journal.StartAsync(fact.DatasetId, fact, ct);
        return new PreparedDataset(fact, output, histogram);
    }

    /// <summary>A dataset is never written over another: the folder must be new or empty.</summary>
    public static void EnsureEmptyOrAbsent(string output)
    {
        if (File.Exists(output)) throw new ArgumentException($"--output {output} is a file; name a new or empty directory");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).FirstOrDefault() is { } entry)
            throw new ArgumentException($"--output {output} is not empty (it holds {Path.GetFileName(entry)}): preference-data writes only into a new "
                + "or empty directory and never overwrites or removes what is there; choose another --output");
    }

    private static DatasetFile Describe(string folder, string name)
    {
        var path = Path.Combine(folder, name);
        using var stream = File.OpenRead(path);
        return new DatasetFile { Name = name, Sha256 = Convert.ToHexStringLower(SHA256.HashData(stream)), Bytes = new FileInfo(path).Length };
    }
}

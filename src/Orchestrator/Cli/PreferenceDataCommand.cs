using System.ComponentModel;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Training.Tasks.Length;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune preference-data FILE --output DIR`: the preference data of a length task, sampled from its reference
/// (<see cref="PreferenceDataset"/>), written as pairs.jsonl (and pairs.parquet), report.json with the lengths'
/// histogram, histogram.png, and recorded as a <see cref="PreferenceDatasetBuilt"/> fact in its own stream.
/// </summary>
public sealed class PreferenceDataCommand : AsyncCommand<PreferenceDataCommand.Settings>
{
    public sealed class Settings : StoreSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("A length-task experiment file: its task.model is the reference, task.length the prompts and goal.")]
        public string File { get; init; } = "";

        [CommandOption("--output <DIR>")]
        [Description("Directory to write (must not exist, or be empty: nothing is ever overwritten).")]
        public string? Output { get; init; }

        [CommandOption("--responses <C>")]
        [Description("Responses sampled per prompt (at least 2).")]
        [DefaultValue(4)]
        public int Responses { get; init; } = 4;

        [CommandOption("--seed <S>")]
        [DefaultValue(1L)]
        public long Seed { get; init; } = 1;

        [CommandOption("--parquet")]
        [Description("Also write pairs.parquet.")]
        public bool Parquet { get; init; }

        [CommandOption("--keep-ties")]
        [Description("Keep pairs whose gold scores are equal (dropped by default).")]
        public bool KeepTies { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so a wrong flag does not wait for the model or the database.
        if (string.IsNullOrWhiteSpace(settings.Output))
            throw new ArgumentException("--output: missing; name a new (or empty) directory for the dataset");
        var output = Path.GetFullPath(settings.Output);
        EnsureEmptyOrAbsent(output);
        if (settings.Responses < 2) throw new ArgumentException($"--responses {settings.Responses}: a pair needs at least 2 responses per prompt");
        var experiment = ExperimentFile.Load(settings.File);
        var task = experiment.Runs[0].Task;   // every run of a file shares its task
        if (task.Kind != LengthTask.Descriptor.Name || task.Model is not { } model || task.Length is not { } length)
            throw new ArgumentException($"{settings.File}: task.kind is {task.Kind}; preference-data builds the data of a length task");
        // Connect before sampling: an unreachable database should not cost the whole build.
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);

        var built = PreferenceDataset.Build(task, new PreferenceDatasetSettings { Responses = settings.Responses, Seed = settings.Seed, KeepTies = settings.KeepTies });
        EnsureEmptyOrAbsent(output);   // again: sampling took a while
        Directory.CreateDirectory(output);
        var files = new List<string> { "pairs.jsonl" };
        PreferenceDataFiles.WriteJsonl(Path.Combine(output, "pairs.jsonl"), built.Rows);
        if (settings.Parquet)
        {
            await PreferenceDataFiles.WriteParquetAsync(Path.Combine(output, "pairs.parquet"), built.Rows, cancellationToken);
            files.Add("pairs.parquet");
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
        await File.WriteAllTextAsync(Path.Combine(output, "report.json"), report.ToJsonString(new() { WriteIndented = true }), cancellationToken);
        files.Add("report.json");
        Reporting.LengthHistogramPlot.Save(histogram, length.Goal, Path.Combine(output, "histogram.png"));
        files.Add("histogram.png");

        var fact = new PreferenceDatasetBuilt
        {
            DatasetId = MassTransit.NewId.NextGuid(), BuiltAt = DateTimeOffset.UtcNow, SourceName = Path.GetFullPath(settings.File),
            ModelPath = model.Path, Tokenizer = LengthTask.TokenizerPath(model), Prompts = length.Prompts, PromptCount = built.PromptCount,
            Goal = length.Goal, ModeLength = built.ModeLength, SkewTruncate = length.SkewTruncate, Seed = settings.Seed,
            ResponsesPerPrompt = settings.Responses, KeepTies = settings.KeepTies, Pairs = built.Rows.Count,
            Files = files.Select(f => Describe(output, f)).ToList(),
        };
        using (var store = EventStoreRegistration.For(options.Database!, options.Schema))
        await using (var session = store.LightweightSession())
        {
            session.Events.StartStream(fact.DatasetId, fact);
            await session.SaveChangesAsync(cancellationToken);
        }

        // plain lines, not Spectre's: they are not wrapped at the terminal's width, so a script can read them
        Console.WriteLine($"dataset {fact.DatasetId}: {built.Rows.Count} pairs from {built.PromptCount} prompts x {settings.Responses} responses (goal {length.Goal}{(built.ModeLength is { } m ? $", mode {m}" : "")}) in {output}");
        foreach (var line in histogram.Lines()) Console.WriteLine(line);
        return 0;
    }

    /// <summary>A dataset is never written over another: the folder must be new or empty.</summary>
    private static void EnsureEmptyOrAbsent(string output)
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

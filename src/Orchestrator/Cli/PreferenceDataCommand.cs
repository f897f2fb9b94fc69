using System.ComponentModel;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Runs;
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
        PreferenceDataJob.EnsureEmptyOrAbsent(output);
        if (settings.Responses < 2) throw new ArgumentException($"--responses {settings.Responses}: a pair needs at least 2 responses per prompt");
        var experiment = ExperimentFile.Load(settings.File);
        var task = experiment.Runs[0].Task;   // every run of a file shares its task
        if (task.Kind != LengthTask.Descriptor.Name)
            throw new ArgumentException($"{settings.File}: task.kind is {task.Kind}; preference-data builds the data of a length task");
        // Connect before sampling: an unreachable database should not cost the whole build.
        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var prepared = await PreferenceDataJob.WriteAsync(task,
            new PreferenceDatasetSettings { Responses = settings.Responses, Seed = settings.Seed, KeepTies = settings.KeepTies },
            settings.Parquet, output, Path.GetFullPath(settings.File), new EventJournal(store, options), cancellationToken);
        var (fact, histogram) = (prepared.Fact, prepared.Histogram);

        // plain lines, not Spectre's: they are not wrapped at the terminal's width, so a script can read them
        Console.WriteLine($"dataset {fact.DatasetId}: {fact.Pairs} pairs from {fact.PromptCount} prompts x {settings.Responses} responses (goal {fact.Goal}{(fact.ModeLength is { } m ? $", mode {m}" : "")}) in {output}");
        foreach (var line in histogram.Lines()) Console.WriteLine(line);
        return 0;
    }
}

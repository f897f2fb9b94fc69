using System.ComponentModel;
using System.Globalization;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Checkpoints;
using PrefTune.Storage.Events;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune export RUN [--version V] --output DIR`: a language-model run's policy checkpoint as a Hugging Face model
/// directory (<see cref="HfExport"/>), by default its last kept checkpoint. Only kept versions have weights (version 0,
/// every checkpoint_every steps, the end; <see cref="CheckpointRetention"/>); asking for another names the nearest kept ones.
/// </summary>
public sealed class ExportCommand : AsyncCommand<ExportCommand.Settings>
{
    public sealed class Settings : StoreSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run id, or a unique prefix or suffix of it (see `preftune runs`).")]
        public string Run { get; init; } = "";

        [CommandOption("--version <V>")]
        [Description("Policy version to export (a whole number). Default: the run's last kept checkpoint.")]
        public string? Version { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Directory to write (must not exist, or be empty: nothing is ever overwritten).")]
        public string? Output { get; init; }

        [CommandOption("--checkpoints <STORE>")]
        [Description("Checkpoint store: 'postgres' (default) or a directory. Default: PREFTUNE_CHECKPOINTS.")]
        public string? Checkpoints { get; init; }

        public override PrefTuneOptions ToOptions()
        {
            var options = base.ToOptions();
            return options with { Checkpoints = Checkpoints ?? options.Checkpoints };
        }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // The cheap checks first, so a wrong flag does not wait for the database.
        if (string.IsNullOrWhiteSpace(settings.Output))
            throw new ArgumentException("--output: missing; name a new (or empty) directory for the Hugging Face files");
        var output = Path.GetFullPath(settings.Output);
        try { HfExport.EnsureEmptyOrAbsent(output); }
        catch (ArgumentException e) { throw new ArgumentException($"--output {e.Message}"); }
        int? wanted = settings.Version is not { } text ? null
            : int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
            : throw new ArgumentException($"--version {text}: expected a whole number, a policy version the run published");

        var options = await PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
        using var store = EventStoreRegistration.For(options.Database!, options.Schema);
        var runId = await RunIds.ResolveAsync(store, settings.Run, cancellationToken);
        var recorded = await RecordedRun.LoadAsync(store, runId, cancellationToken)
            ?? throw new ArgumentException($"run: no events recorded for run {runId}");
        var task = recorded.Started.Spec.Task;
        if (task.Kind != LengthTask.Descriptor.Name || task.Model is not { } model)
            throw new ArgumentException($"run {runId}: not a language-model run (its task is {task.Kind}); export writes language-model policies only");

        var checkpoints = CheckpointStoreFactory.Create(options.Checkpoints, options.Database, options.Schema);
        try
        {
            var checkpoint = await ChooseAsync(checkpoints, recorded, wanted, cancellationToken);
            HfExport.EnsureEmptyOrAbsent(output);
            ExportResult result;
            await using (var weights = await checkpoints.OpenReadAsync(checkpoint, cancellationToken))
            {
                try
                {
                    result = HfExport.Write(model, weights, checkpoint.Sha256, output, new ExportSource(runId, checkpoint.Version));
                }
                catch (ArgumentException e) when (e.InnerException is CheckpointStoreException damaged)
                {
                    // a damaged checkpoint, found while its weights streamed in: say that, not that they do not fit the model
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(damaged);
                    throw;
                }
            }
            AnsiConsole.MarkupLineInterpolated($"exported run {runId} version {checkpoint.Version} (sha256 {result.WeightsSha256}) to {result.Directory}");
            AnsiConsole.MarkupLineInterpolated($"[grey]{string.Join(", ", result.Files)}; base model {model.Path}[/]");
            return 0;
        }
        finally
        {
            (checkpoints as IDisposable)?.Dispose();
        }
    }

    /// <summary>The checkpoint to export: version <paramref name="wanted"/> if its weights are stored, else the last
    /// kept one. A version never published, or one whose weights were transient and are gone, is a user error that
    /// says which versions can be exported.</summary>
    private static async Task<CheckpointRef> ChooseAsync(ICheckpointStore store, RecordedRun run, int? wanted, CancellationToken ct)
    {
        var runId = run.Started.RunId;
        var kept = new List<CheckpointRef>();
        foreach (var checkpoint in CheckpointRetention.Kept(run))
            if (await store.ContainsAsync(checkpoint.Sha256, ct))
                kept.Add(checkpoint);
        if (wanted is not { } version)
            return kept.LastOrDefault() ?? throw new ArgumentException($"run {runId}: no checkpoint with stored weights (it published {run.Checkpoints.Count})");
        var published = run.Checkpoints.FirstOrDefault(c => c.Version == version);
        if (published is null)
            throw new ArgumentException($"--version {version}: run {runId} never published it ({Describe(run.Checkpoints)}); kept versions: {Versions(kept)}");
        // A transient copy may still be stored while its run samples from it; then it can be read like a kept one.
        if (await store.ContainsAsync(published.Sha256, ct)) return published;
        var below = kept.LastOrDefault(c => c.Version < version);
        var above = kept.FirstOrDefault(c => c.Version > version);
        var nearest = string.Join(" or ", new[] { below, above }.OfType<CheckpointRef>().Select(c => c.Version));
        throw new ArgumentException($"--version {version}: run {runId} did not keep its weights (a transient version, removed; "
            + $"checkpoint_every is {run.Started.Spec.Loop.CheckpointEvery}); nearest kept: {(nearest == "" ? "none" : nearest)}");
    }

    private static string Versions(IEnumerable<CheckpointRef> checkpoints) =>
        checkpoints.Select(c => c.Version).ToList() is { Count: > 0 } list ? string.Join(", ", list) : "none";

    /// <summary>"published 0-300", like `show`'s message.</summary>
    private static string Describe(IReadOnlyList<CheckpointRef> checkpoints)
    {
        var versions = checkpoints.Select(c => c.Version).Distinct().Order().ToList();
        return versions.Count == 0 ? "it published none"
            : versions[^1] - versions[0] == versions.Count - 1 ? $"published {versions[0]}-{versions[^1]}"
            : $"published {string.Join(", ", versions)}";
    }
}

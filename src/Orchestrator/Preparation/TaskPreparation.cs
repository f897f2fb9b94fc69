using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;

namespace PrefTune.Orchestrator.Preparation;

/// <summary>
/// Prepares a length study's tasks as the paper does (PAPER.md, Problem 2): per entry of the reward axis, a preference
/// dataset sampled from the reference and labelled by the task's gold rule (<see cref="PreferenceDataJob"/>), then a proxy
/// reward model trained on it from the reference's weights (<see cref="RewardModelJob"/>). Each task's runs then name the
/// two: online methods train on the reward model, offline ones on the dataset, and goal mode scores against the mode the
/// dataset found.
/// <para>Both are deterministic given their inputs, so a preparation is kept under a key made of everything it depends on
/// (the task, the reference's files, the settings, the thread count) in the data folder's <c>prepared/</c>, and found
/// again by the next study with the same key: `study --resume` gets the same paths, hence the same run specs, and a
/// second study of the same tasks does not sample and train again. A preparation is complete once its
/// <c>prepared.json</c> exists (written last, by rename); a folder without one is an interrupted attempt, left as it is
/// (its dataset may be on record) and never read.</para>
/// </summary>
public static class TaskPreparation
{
    public const string FolderName = "prepared";
    public const string Marker = "prepared.json";
    /// <summary>Written once the dataset is: an attempt stopped while training the reward model resumes from that dataset.</summary>
    public const string DatasetMarker = "dataset.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <returns>The study with each run's spec naming its task's dataset and reward model, and one fact per task (their
    /// StudyId empty: the study stream records them once it starts).</returns>
    public static async Task<(Study Study, IReadOnlyList<StudyTaskPrepared> Prepared)> PrepareAsync(Study study, string root, EventJournal journal,
        string? sourceName, Action<string>? log, CancellationToken ct)
    {
        if (study.Preparation is not { } preparation)
            return (study, []);
        var threads = study.Runs.FirstOrDefault()?.Spec.TorchThreads ?? 1;
        var prepared = new Dictionary<string, StudyTaskPrepared>();
        foreach (var reward in study.Rewards)
            prepared[reward.Label] = await PrepareAsync(reward.Label, reward.Task, preparation, threads, root, journal, sourceName, log, ct);
        var runs = study.Runs.Select(r => r with { Spec = Apply(r.Spec, prepared[r.Cell.Reward]) }).ToList();
        return (study with { Runs = runs }, study.Rewards.Select(r => prepared[r.Label]).ToList());
    }

    /// <summary>One task: found under its key, or made there.</summary>
    public static async Task<StudyTaskPrepared> PrepareAsync(string label, TaskSpec task, StudyPreparation preparation, int threads, string root,
        EventJournal journal, string? sourceName, Action<string>? log, CancellationToken ct)
    {
        var model = task.Model ?? throw new ArgumentException($"rewards {label}: a length task needs task.model");
        var key = KeyOf(task, preparation, threads);
        var folder = Path.Combine(Path.GetFullPath(root), key);
        var marker = Path.Combine(folder, Marker);
        if (File.Exists(marker) && JsonSerializer.Deserialize<StudyTaskPrepared>(await File.ReadAllTextAsync(marker, ct)) is { } earlier
            && File.Exists(earlier.DatasetFile) && Directory.Exists(earlier.RewardModel))
        {
            log?.Invoke($"{label}: prepared earlier ({folder}): {earlier.Pairs} pairs, reward model held-out accuracy {Format(earlier.EvalAccuracy)}");
            return earlier with { Reward = label, Reused = true };
        }

        var attempt = NewId.NextGuid().ToString("N")[^8..];   // a fresh folder per attempt: an interrupted one is never written into
        var datasetMarker = Path.Combine(folder, DatasetMarker);
        PreparedDataset data;
        if (File.Exists(datasetMarker) && JsonSerializer.Deserialize<PreferenceDatasetBuilt>(await File.ReadAllTextAsync(datasetMarker, ct)) is { } built
            && built.Files.FirstOrDefault(f => f.Name == PreferenceDataJob.PairsJsonl) is not null && Directory.Exists(DatasetFolderOf(folder, built)))
        {
            // an earlier attempt stopped after its dataset (recorded, never rewritten): train the reward model on that one
            data = new PreparedDataset(built, DatasetFolderOf(folder, built), Training.Tasks.Length.LengthHistogram.Of([]));
            log?.Invoke($"{label}: dataset {built.DatasetId} made by an earlier attempt ({data.Folder})");
        }
        else
        {
            log?.Invoke($"{label}: sampling {preparation.Data.Responses} responses per prompt from the reference (goal {task.Length?.Goal})");
            data = await PreferenceDataJob.WriteAsync(task, preparation.Data, parquet: false, Path.Combine(folder, $"data-{attempt}"), sourceName, journal, ct);
            await WriteWholeAsync(datasetMarker, JsonSerializer.Serialize(data.Fact, Indented), attempt, ct);
        }
        log?.Invoke($"{label}: {data.Fact.Pairs} pairs{(data.Fact.ModeLength is { } m ? $", mode length {m}" : "")}; training the reward model ({preparation.RewardModel.Steps} steps)");
        var plan = await RewardModelJob.PlanAsync(new TrainingSource(data.PairsFile, model.Path, model.Tokenizer, model.Device, threads),
            preparation.RewardModel, Path.Combine(folder, $"reward-model-{attempt}"), ct);
        var (rewardModel, result) = await RewardModelJob.TrainAsync(plan, journal, null, ct);
        var fact = new StudyTaskPrepared
        {
            StudyId = Guid.Empty, Reward = label, Key = key,
            DatasetId = data.Fact.DatasetId, DatasetFile = data.PairsFile, Pairs = data.Fact.Pairs, ModeLength = data.Fact.ModeLength,
            RewardModelId = rewardModel.RewardModelId, RewardModel = rewardModel.Output,
            EvalPairs = result.EvalPairs, EvalAccuracy = rewardModel.EvalAccuracy,
        };
        await WriteWholeAsync(marker, JsonSerializer.Serialize(fact, Indented), attempt, ct);   // last: a preparation is whole or not there
        log?.Invoke($"{label}: reward model held-out accuracy {Format(fact.EvalAccuracy)} on {fact.EvalPairs} pairs");
        return fact;
    }

    /// <summary>A file that exists whole or not at all: written beside, then renamed.</summary>
    private static async Task WriteWholeAsync(string path, string text, string attempt, CancellationToken ct)
    {
        var pending = $"{path}.{attempt}";
        await File.WriteAllTextAsync(pending, text, ct);
        File.Move(pending, path);
    }

    /// <summary>The folder a recorded dataset of this preparation was written to: its pairs file's folder, named by the
    /// attempt (the fact lists file names only).</summary>
    private static string DatasetFolderOf(string folder, PreferenceDatasetBuilt built) =>
        Directory.GetDirectories(folder, "data-*").FirstOrDefault(d => File.Exists(Path.Combine(d, PreferenceDataJob.PairsJsonl))
            && Sha256Of(Path.Combine(d, PreferenceDataJob.PairsJsonl)) == built.Files.First(f => f.Name == PreferenceDataJob.PairsJsonl).Sha256) ?? "";

    private static string Sha256Of(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>A run of a prepared task: its dataset (offline methods: D_pref, C = 2, one prompt group per pair), its
    /// reward model, and goal mode's mode.</summary>
    public static RunSpec Apply(RunSpec spec, StudyTaskPrepared prepared)
    {
        var length = spec.Task.Length ?? throw new ArgumentException($"{spec.Label}: only a length task is prepared");
        return spec with
        {
            Task = spec.Task with { Length = length with { Dataset = prepared.DatasetFile, ModeLength = length.ModeLength ?? prepared.ModeLength } },
            RewardModel = new RewardModelSpec { Path = prepared.RewardModel, Device = spec.Task.Model?.Device ?? "cpu" },
            Loop = spec.Method.Data == DataSource.Offline ? spec.Loop with { DatasetResponses = 2, DatasetPrompts = prepared.Pairs } : spec.Loop,
        };
    }

    /// <summary>
    /// What a preparation depends on, hashed: the task (paths as resolved), the settings, the thread count (results are
    /// bit-identical only at equal counts), and the reference's and prompt file's bytes as the file system describes them
    /// (name, size, last write; hashing a large model's weights would cost more than the check is worth). Not the model's
    /// precision: a preparation samples (always float32) and trains a reward model of its own, so runs in fp32 and bf16
    /// share one.
    /// </summary>
    public static string KeyOf(TaskSpec task, StudyPreparation preparation, int threads)
    {
        var text = new StringBuilder()
            .AppendLine(JsonSerializer.Serialize(task with { Length = task.Length! with { Dataset = "" }, Model = task.Model is { } model ? model with { Precision = Precision.Fp32 } : null }))
            .AppendLine(JsonSerializer.Serialize(preparation))
            .AppendLine(threads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var path in new[] { task.Model?.Path, task.Model?.Tokenizer, task.Length?.Prompts }.Where(p => !string.IsNullOrEmpty(p)))
        {
            IEnumerable<string> files = Directory.Exists(path) ? Directory.GetFiles(path!).Order(StringComparer.Ordinal) : File.Exists(path) ? [path!] : [];
            foreach (var file in files)
            {
                var info = new FileInfo(file);
                text.AppendLine($"{file} {info.Length} {info.LastWriteTimeUtc.Ticks}");
            }
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    private static string Format(double? accuracy) => accuracy is { } a ? a.ToString("F3", System.Globalization.CultureInfo.InvariantCulture) : "n/a (none held out)";
}

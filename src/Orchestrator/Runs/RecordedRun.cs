using Marten;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// A run as its event stream records it, indexed for replaying and resuming: its batches in order with their
/// samples (rollout and training reward), what the Learner made of each, and every checkpoint.
/// </summary>
public sealed class RecordedRun
{
    private readonly Dictionary<Guid, TrainingSample> _samples;

    private RecordedRun(RunStarted started, IReadOnlyList<object> events, Dictionary<Guid, TrainingSample> samples)
    {
        Started = started;
        Events = events;
        _samples = samples;
        Initialized = events.OfType<PolicyInitialized>().FirstOrDefault();
        Assembled = events.OfType<TrainingBatchAssembled>().OrderBy(a => a.Iteration).ToList();
        Trained = events.OfType<PolicyTrained>().GroupBy(t => t.BatchId).ToDictionary(g => g.Key, g => g.First());
        Checkpoints = events.OfType<CheckpointPublished>().Select(c => c.Checkpoint).OrderBy(c => c.Version).ToList();
        Evaluations = events.OfType<PolicyEvaluated>().ToList();
        Updates = events.OfType<UpdateApplied>().ToList();
        Completed = events.OfType<RunCompleted>().Any();
    }

    public RunStarted Started { get; }
    public IReadOnlyList<object> Events { get; }
    public PolicyInitialized? Initialized { get; }
    /// <summary>Every batch handed to the Learner, in iteration order.</summary>
    public IReadOnlyList<TrainingBatchAssembled> Assembled { get; }
    /// <summary>The Learner's answer per batch id (absent for a batch whose training was never recorded).</summary>
    public IReadOnlyDictionary<Guid, PolicyTrained> Trained { get; }
    public IReadOnlyList<CheckpointRef> Checkpoints { get; }
    public IReadOnlyList<PolicyEvaluated> Evaluations { get; }
    public IReadOnlyList<UpdateApplied> Updates { get; }
    public bool Completed { get; }
    /// <summary>For a counterfactual replay: the run whose batches it trains on.</summary>
    public RecordedRun? ReplayedRun { get; private init; }

    /// <summary>The batch's samples in the order the Learner got them, grouped by prompt as it got them (group = index / C).</summary>
    public IReadOnlyList<TrainingSample> SamplesOf(TrainingBatchAssembled batch)
    {
        var c = Started.Spec.Loop.C;
        return batch.SampleIds.Select((id, i) => _samples.TryGetValue(id, out var sample)
                ? sample with { Rollout = sample.Rollout with { Group = i / c } }
                : throw new InvalidOperationException($"run {Started.RunId}: batch {batch.BatchId} uses sample {id}, which no recorded batch produced"))
            .ToList();
    }

    /// <summary>A run from its events in stream order (the first must be RunStarted), without a replayed source run.</summary>
    public static RecordedRun From(IReadOnlyList<object> events) =>
        new(events.FirstOrDefault() as RunStarted ?? throw new ArgumentException("events: a run's stream starts with RunStarted"), events, SamplesIn(events));

    /// <summary>Loads a run's stream; a counterfactual replay's samples come from the run it replays.</summary>
    public static async Task<RecordedRun?> LoadAsync(IDocumentStore store, Guid runId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var events = (await session.Events.FetchStreamAsync(runId, token: ct)).Select(e => e.Data).ToList();
        if (events.FirstOrDefault() is not RunStarted started) return null;
        var samples = SamplesIn(events);
        var original = started.ReplayOf is { } source ? await LoadAsync(store, source, ct) : null;
        if (original is not null)
            foreach (var (id, sample) in original._samples)
                samples.TryAdd(id, sample);
        return new RecordedRun(started, events, samples) { ReplayedRun = original };
    }

    /// <summary>Every training and dataset rollout with its training reward.</summary>
    private static Dictionary<Guid, TrainingSample> SamplesIn(IReadOnlyList<object> events)
    {
        var rewards = events.OfType<RolloutsScored>().Where(s => s.Purpose != RolloutPurpose.Evaluation)
            .SelectMany(s => s.Scores).ToDictionary(s => s.SampleId, s => s.Reward);
        return events.OfType<RolloutsGenerated>().Where(g => g.Purpose != RolloutPurpose.Evaluation)
            .SelectMany(g => g.Rollouts).Where(r => rewards.ContainsKey(r.SampleId))
            .ToDictionary(r => r.SampleId, r => new TrainingSample { Rollout = r, Reward = rewards[r.SampleId] });
    }
}

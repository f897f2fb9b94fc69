using Marten;
using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Studies;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// `preftune run FILE --resume` and `preftune study FILE --resume`: an experiment or study file continued as a whole.
/// Its runs are found in the event store by their spec: the same experiment (or study) name, then the same <see cref="StudyRunner.SameRunKey"/> (everything but labels;
/// runs are deterministic given their spec, so any recorded run of a spec stands for it). Per (method, seed) of the
/// file: the latest completed run is kept; else the latest unfinished one (stopped, failed or abandoned) is resumed;
/// a spec with no run is started. A run still live (its owner holds the lease) refuses the whole file before anything
/// starts. Counterfactual replays are other runs and never stand for a spec.
/// </summary>
public sealed class ResumePlan
{
    private readonly Dictionary<RunSpec, Guid?> _keep = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<RunSpec, Guid> _resume = new(ReferenceEqualityComparer.Instance);

    public static Task<ResumePlan> PlanAsync(IDocumentStore store, Experiment experiment, CancellationToken ct) =>
        PlanAsync(store, experiment.Name, experiment.Runs, ct);

    /// <param name="name">The file's name: every run's <see cref="RunSpec.Experiment"/>.</param>
    public static async Task<ResumePlan> PlanAsync(IDocumentStore store, string name, IReadOnlyList<RunSpec> specs, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var summaries = (await session.Query<RunSummary>().Where(r => r.Experiment == name).ToListAsync(ct))
            .OrderBy(r => r.StartedAt).ToList();
        var leases = await RunLeases.LoadAsync(session, summaries.Select(r => r.Id).ToList(), ct);
        var now = DateTimeOffset.UtcNow;
        var recorded = new List<(string Key, RunSummary Summary, string Status)>();
        foreach (var summary in summaries)
        {
            var first = (await session.Events.FetchStreamAsync(summary.Id, version: 1, token: ct)).FirstOrDefault()?.Data as RunStarted;
            if (first is null || first.ReplayOf is not null) continue;
            recorded.Add((StudyRunner.SameRunKey(first.Spec), summary, RunLeases.StatusOf(summary.Status, leases.GetValueOrDefault(summary.Id), now)));
        }

        var plan = new ResumePlan();
        var claimed = new HashSet<Guid>();
        var live = new List<string>();
        foreach (var spec in specs)
        {
            var key = StudyRunner.SameRunKey(spec);
            var candidates = recorded.Where(r => r.Key == key && !claimed.Contains(r.Summary.Id)).ToList();
            var done = candidates.LastOrDefault(r => r.Status == "completed");
            var latest = candidates.LastOrDefault();
            if (done.Summary is not null)
            {
                plan._keep[spec] = done.Summary.Id;
                claimed.Add(done.Summary.Id);
            }
            else if (latest.Summary is null)
            {
                plan._keep[spec] = null;
            }
            else if (latest.Status == "running")
            {
                live.Add($"{spec.Label} seed {spec.Seed} (run {latest.Summary.Id})");
            }
            else
            {
                plan._resume[spec] = latest.Summary.Id;
                claimed.Add(latest.Summary.Id);
            }
        }
        if (live.Count > 0)
            throw new RunIsLiveException($"{name}: runs are still running elsewhere: {string.Join(", ", live)}; stop that process first, or wait until `preftune runs` shows it abandoned");
        return plan;
    }

    /// <summary>The run of <paramref name="spec"/>: kept as recorded, resumed, or started.</summary>
    public async Task<RunOutcome> RunAsync(PipelineSession session, RunSpec spec, IProgress<RunProgress>? progress, CancellationToken ct)
    {
        var name = $"{spec.Label} seed {spec.Seed}";
        if (_keep.TryGetValue(spec, out var kept) && kept is { } keptId)
        {
            var record = await RunHistory.LoadAsync(session.Store, keptId, ct)
                ?? throw new InvalidOperationException($"run {keptId} vanished from the event store");
            Say($"{name}: run {keptId} completed earlier; kept");
            progress?.Report(new RunProgress(keptId, spec.Label, record.Outcome.GradientSteps, spec.Loop.GradientSteps, record.Outcome.FinalGoldReward));
            return record.Outcome;
        }
        if (_resume.TryGetValue(spec, out var runId))
        {
            var recorded = await RecordedRun.LoadAsync(session.Store, runId, ct)
                ?? throw new InvalidOperationException($"run {runId} vanished from the event store");
            if (recorded.Initialized is not null && recorded.Checkpoints.Count > 0)
            {
                Say($"{name}: resuming run {runId} from version {recorded.Checkpoints[^1].Version}");
                return await session.ResumeAsync(recorded, progress, ct);
            }
            Say($"{name}: run {runId} stopped before its policy was initialized; starting it again as a new run");
        }
        var outcome = await session.RunAsync(spec, progress, ct);
        return outcome;
    }

    private static void Say(string message) => Console.Error.WriteLine($"preftune: {message}");
}

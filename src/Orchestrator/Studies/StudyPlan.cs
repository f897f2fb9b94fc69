using System.Globalization;
using Marten;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Studies;

/// <summary>
/// What a study will do, said before it starts: runs, gradient steps, samples to draw, and how long that should take on
/// this machine, timed by the runs of the same task and model already on record here.
/// </summary>
public static class StudyPlan
{
    public static string Describe(Study study)
    {
        var distinct = Distinct(study);
        var steps = distinct.Sum(s => (long)s.Loop.GradientSteps);
        var sampled = distinct.Sum(TrainingSamples);
        var evaluated = distinct.Sum(EvaluationSamples);
        var prepared = study.Preparation is null ? "" : $"; first {study.Rewards.Count} task preparations (a dataset and a reward model each)";
        return string.Create(CultureInfo.InvariantCulture,
            $"{study.Name}: {study.Runs.Count} cells, {distinct.Count} distinct runs, {steps:N0} gradient steps, {sampled:N0} training and {evaluated:N0} evaluation samples{prepared}");
    }

    /// <summary>
    /// The study's runs timed by the completed runs recorded in <paramref name="store"/> on the same task kind and policy
    /// (the same model path for a language model): their wall-clock per unit of work (<see cref="Work"/>), times the
    /// study's work. Null when no such run is on record. Preparations are not included.
    /// </summary>
    public static async Task<(TimeSpan Estimate, int Runs)?> EstimateAsync(IDocumentStore store, Study study, CancellationToken ct)
    {
        var distinct = Distinct(study);
        if (distinct.Count == 0) return null;
        var like = PolicyOf(distinct[0]);
        await using var session = store.QuerySession();
        var started = (await session.Events.QueryRawEventDataOnly<RunStarted>().ToListAsync(ct))
            .Where(s => s.ReplayOf is null && PolicyOf(s.Spec) == like).ToDictionary(s => s.RunId);
        if (started.Count == 0) return null;
        var resumed = (await session.Events.QueryRawEventDataOnly<RunResumed>().ToListAsync(ct)).Select(r => r.RunId).ToHashSet();
        var timed = (await session.Events.QueryRawEventDataOnly<RunCompleted>().ToListAsync(ct))
            .Where(c => started.ContainsKey(c.RunId) && !resumed.Contains(c.RunId))   // a resumed run's wall-clock includes its pause
            .Select(c => (Seconds: (c.CompletedAt - started[c.RunId].StartedAt).TotalSeconds, Work: Work(started[c.RunId].Spec)))
            .Where(t => t.Seconds > 0 && t.Work > 0)
            .TakeLast(50)
            .ToList();
        if (timed.Count == 0) return null;
        var secondsPerWork = timed.Sum(t => t.Seconds) / timed.Sum(t => t.Work);
        return (TimeSpan.FromSeconds(secondsPerWork * distinct.Sum(Work)), timed.Count);
    }

    /// <summary>A run's work, in sampled or trained responses times their length: every sample generated (training and
    /// evaluation) and every sample in a gradient step, each as long as a response may be (1 for the bandit's).</summary>
    public static double Work(RunSpec spec) =>
        (TrainingSamples(spec) + EvaluationSamples(spec) + (double)spec.Loop.GradientSteps * spec.Loop.M) * (spec.Task.Model?.MaxNewTokens ?? 1);

    public static string Say(TimeSpan estimate) =>
        estimate.TotalMinutes >= 90 ? $"{estimate.TotalHours:F1} h" : estimate.TotalMinutes >= 2 ? $"{estimate.TotalMinutes:F0} min" : $"{estimate.TotalSeconds:F0} s";

    private static List<RunSpec> Distinct(Study study) => study.Runs.Select(r => r.Spec).DistinctBy(StudyRunner.SameRunKey).ToList();

    /// <summary>Online: B per iteration; offline: D_pref, sampled once (none when it is read from a file).</summary>
    private static long TrainingSamples(RunSpec s) =>
        s.Method.Data == DataSource.Offline
            ? s.Task.Length is { Dataset: not "" } ? 0 : (long)s.Loop.DatasetPrompts * s.Loop.DatasetResponses
            : (long)s.Loop.GradientSteps / Math.Max(1, s.Loop.T * s.Loop.B / Math.Max(1, s.Loop.M)) * s.Loop.B;

    private static long EvaluationSamples(RunSpec s) => ((long)s.Loop.GradientSteps / Math.Max(1, s.Loop.EvalEvery) + 1) * s.Loop.EvalSamples;

    /// <summary>Which runs time each other: the same task kind and policy (the model's path for a language model).</summary>
    private static string PolicyOf(RunSpec spec) =>
        $"{spec.Task.Kind}|{spec.Task.Model?.Path ?? spec.Task.Bandit?.Policy}|{spec.TorchThreads}";
}

using System.Diagnostics;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using Spectre.Console;

namespace PrefTune.Orchestrator.Bench;

/// <summary>What a stage call was for: the split the bench prints keeps training and evaluation apart, because an
/// evaluation's sampling and scoring is not part of Algorithm 1's update and its cost depends on eval_every.</summary>
public enum StageKind
{
    Initialize,
    TrainingSampling,
    TrainingScoring,
    DatasetSampling,
    DatasetScoring,
    Learning,
    EvaluationSampling,
    EvaluationScoring,
}

/// <summary>
/// An <see cref="IStageCalls"/> that passes every call on and adds its wall-clock to its <see cref="StageKind"/>. The
/// clock is injectable so a test can advance it by known amounts instead of sleeping. Totals are added with
/// Interlocked because with max_staleness K &gt; 0 the loop samples ahead while the Learner trains.
/// </summary>
public sealed class TimedStages(IStageCalls inner, Func<long>? ticks = null, long ticksPerSecond = 0) : IStageCalls
{
    private readonly Func<long> _ticks = ticks ?? Stopwatch.GetTimestamp;
    private readonly double _ticksPerSecond = ticks is null ? Stopwatch.Frequency : ticksPerSecond;
    private readonly long[] _elapsed = new long[Enum.GetValues<StageKind>().Length];
    private readonly int[] _calls = new int[Enum.GetValues<StageKind>().Length];

    public Task<PolicyInitialized> InitializeAsync(InitializePolicy request, CancellationToken ct) =>
        TimeAsync(StageKind.Initialize, () => inner.InitializeAsync(request, ct));

    public Task<RolloutsGenerated> SampleAsync(SampleRollouts request, CancellationToken ct) =>
        TimeAsync(request.Purpose switch
        {
            RolloutPurpose.Training => StageKind.TrainingSampling,
            RolloutPurpose.Dataset => StageKind.DatasetSampling,
            RolloutPurpose.Evaluation => StageKind.EvaluationSampling,
            var other => throw new ArgumentOutOfRangeException(nameof(request), other, "unknown rollout purpose"),
        }, () => inner.SampleAsync(request, ct));

    public Task<RolloutsScored> ScoreAsync(ScoreRollouts request, CancellationToken ct) =>
        TimeAsync(request.Purpose switch
        {
            RolloutPurpose.Training => StageKind.TrainingScoring,
            RolloutPurpose.Dataset => StageKind.DatasetScoring,
            RolloutPurpose.Evaluation => StageKind.EvaluationScoring,
            var other => throw new ArgumentOutOfRangeException(nameof(request), other, "unknown rollout purpose"),
        }, () => inner.ScoreAsync(request, ct));

    public Task<PolicyTrained> TrainAsync(TrainPolicy request, CancellationToken ct) =>
        TimeAsync(StageKind.Learning, () => inner.TrainAsync(request, ct));

    /// <summary>Seconds and calls per kind so far; the bench subtracts the snapshot taken before the iterations so
    /// initialization (and its step-0 evaluation) and an offline method's D_pref stay out of the per-iteration split.</summary>
    public StageTotals Snapshot() => new(
        Enum.GetValues<StageKind>().ToDictionary(k => k, k => Interlocked.Read(ref _elapsed[(int)k]) / _ticksPerSecond),
        Enum.GetValues<StageKind>().ToDictionary(k => k, k => Volatile.Read(ref _calls[(int)k])));

    private async Task<T> TimeAsync<T>(StageKind kind, Func<Task<T>> call)
    {
        var start = _ticks();
        try
        {
            return await call();
        }
        finally
        {
            // A failed call's time is counted too: it was spent in that stage.
            Interlocked.Add(ref _elapsed[(int)kind], _ticks() - start);
            Interlocked.Increment(ref _calls[(int)kind]);
        }
    }
}

public sealed record StageTotals(IReadOnlyDictionary<StageKind, double> Seconds, IReadOnlyDictionary<StageKind, int> Calls)
{
    public StageTotals Minus(StageTotals earlier) => new(
        Seconds.ToDictionary(p => p.Key, p => p.Value - earlier.Seconds[p.Key]),
        Calls.ToDictionary(p => p.Key, p => p.Value - earlier.Calls[p.Key]));
}

/// <summary>One method's iterations split into the printed parts. Everything else is the wall-clock minus the stage
/// calls: in process that is Algorithm 1's own bookkeeping (prompt draws, building requests, the run state); it is
/// negative only if calls overlapped (K &gt; 0), which is why the bench runs at K = 0.</summary>
public sealed record StageSplit(string Method, int Iterations, double WallSeconds, StageTotals Totals)
{
    public double Sampling => Totals.Seconds[StageKind.TrainingSampling] + Totals.Seconds[StageKind.DatasetSampling];
    public double Scoring => Totals.Seconds[StageKind.TrainingScoring] + Totals.Seconds[StageKind.DatasetScoring];
    public double Learning => Totals.Seconds[StageKind.Learning];
    public double Evaluation => Totals.Seconds[StageKind.EvaluationSampling] + Totals.Seconds[StageKind.EvaluationScoring];
    public double Other => WallSeconds - Sampling - Scoring - Learning - Evaluation;

    /// <summary>The printed parts in order, each in seconds for the whole measurement.</summary>
    public IReadOnlyList<(string Part, double Seconds)> Parts =>
    [
        ("sampling (training)", Sampling), ("reward scoring (training)", Scoring), ("learning", Learning),
        ("evaluation (sampling + scoring)", Evaluation), ("everything else", Other),
    ];

    public double Share(double seconds) => WallSeconds > 0 ? seconds / WallSeconds : 0;
}

/// <summary>
/// `preftune bench FILE --split`: the wall-clock of one Algorithm 1 iteration split into sampling, reward scoring and
/// learning for training, evaluation, and the rest, per method. Runs in process (<see cref="InProcessStages"/>, as
/// <see cref="DirectLoop"/> does: no bus, no event store), so the rest is the loop's own bookkeeping; for what the
/// pipeline adds on top see `bench` and `bench --pipeline`. A benchmark: it prints numbers, asserts none.
/// </summary>
public static class StageSplitBench
{
    public static async Task RunAsync(IReadOnlyList<RunSpec> specs, CancellationToken ct)
    {
        // One untimed iteration first: the JIT, libtorch and the reward model's first load warm up.
        var warm = specs[0].Loop;
        var oneIteration = warm.T * warm.B / warm.M;
        await MeasureAsync(specs[0] with { Loop = warm with { GradientSteps = oneIteration, EvalEvery = oneIteration } }, ct);

        // One row per part rather than per method: five parts side by side do not fit a terminal's width.
        var table = new Table().AddColumns("method", "iterations", "part", "s / iteration", "share");
        table.Title = new TableTitle($"in process, max_staleness 0, {specs[0].Loop.GradientSteps} steps per method; share of wall-clock");
        foreach (var spec in specs)
        {
            var split = await MeasureAsync(spec, ct);
            table.AddRow(Markup.Escape(split.Method), split.Iterations.ToString(), "wall-clock", $"{split.WallSeconds / split.Iterations:0.000}", "100 %");
            foreach (var (part, seconds) in split.Parts)
                table.AddRow("", "", part, $"{seconds / split.Iterations:0.000}", $"{split.Share(seconds):P0}");
        }
        AnsiConsole.Write(table);
    }

    /// <summary>One run of <paramref name="spec"/> in process, its iterations timed and split. K is set to 0: sampling
    /// ahead would overlap the Learner and the parts would no longer add up to the wall-clock.</summary>
    public static async Task<StageSplit> MeasureAsync(RunSpec spec, CancellationToken ct)
    {
        spec = spec with { Loop = spec.Loop with { MaxStaleness = 0 } };
        using var inProcess = new InProcessStages();
        return await MeasureAsync(spec, inProcess, ct);
    }

    /// <summary>The same on any stage calls; a test passes fakes and the clock they advance, so the split is exact.</summary>
    public static async Task<StageSplit> MeasureAsync(RunSpec spec, IStageCalls stages, CancellationToken ct,
        Func<long>? ticks = null, long ticksPerSecond = 0)
    {
        var now = ticks ?? Stopwatch.GetTimestamp;
        var perSecond = ticks is null ? Stopwatch.Frequency : (double)ticksPerSecond;
        var timed = new TimedStages(stages, ticks, ticksPerSecond);
        var algorithm = new Algorithm1(timed, Unrecorded.Instance);
        var run = new RunState(Guid.NewGuid(), spec);
        await algorithm.InitializeAsync(run, ct);
        var source = await algorithm.SourceAsync(run, null, ct);
        var before = timed.Snapshot();
        var start = now();
        await algorithm.TrainAsync(run, source, 0, null, null, ct);
        var wall = (now() - start) / perSecond;
        return new StageSplit(spec.Label, run.Iterations, wall, timed.Snapshot().Minus(before));
    }
}

using PrefTune.Messages;

namespace PrefTune.Training.Optimization;

/// <summary>
/// The learning-rate multiplier at optimizer step k (0-based) of a run of <c>total</c> steps, with Hugging Face
/// transformers' conventions (optimization.py): during warmup k / warmup; then 1 (constant), (total - k) / (total -
/// warmup) (linear), or 0.5 (1 + cos(pi progress)) with progress = (k - warmup) / (total - warmup) (cosine). As
/// with HF's LambdaLR, step 0 uses the multiplier at 0, so with warmup the first update has rate 0.
/// </summary>
public static class LearningRateSchedule
{
    public static double Multiplier(ScheduleKind schedule, int step, int warmupSteps, int totalSteps)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must be at least 0");
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warmup_steps must be at least 0");
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, "a run needs at least 1 optimizer step");
        if (schedule != ScheduleKind.Constant && warmupSteps > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, $"warmup_steps exceeds the run's {totalSteps} optimizer steps: the rate would never decay");
        if (step < warmupSteps) return (double)step / Math.Max(1, warmupSteps);
        // Past the last step the decay holds at 0: HF's cosine would climb back up, which no run wants.
        var progress = Math.Min(1.0, (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps));
        return schedule switch
        {
            ScheduleKind.Constant => 1.0,
            ScheduleKind.Linear => 1.0 - progress,
            ScheduleKind.Cosine => 0.5 * (1.0 + Math.Cos(Math.PI * progress)),
            _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "unknown schedule"),
        };
    }
}

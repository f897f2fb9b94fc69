using System.Globalization;
using PrefTune.Messages;
using PrefTune.Training.Tasks;

namespace PrefTune.Orchestrator.Experiments;

/// <summary>
/// One part of what a run holds in memory: its name, bytes (<paramref name="Count"/> items of <paramref name="Each"/>
/// bytes), and the loop and task fields that set it.
/// </summary>
public sealed record MemoryTerm(string Name, double Count, double Each, IReadOnlyList<SizeField> LoopFields, IReadOnlyList<SizeField> TaskFields)
{
    public double Bytes => Count * Each;

    /// <summary>"rollouts per batch 16.8 TB (B = 1000000000, 17.6 KB each)"; a term without loop fields names its task fields.</summary>
    public override string ToString() => LoopFields.Count > 0
        ? $"{Name} {MemoryLimit.Format(Bytes)} ({string.Join(", ", LoopFields)}, {MemoryLimit.Format(Each)} each)"
        : $"{Name} {MemoryLimit.Format(Bytes)} ({string.Join(", ", TaskFields)})";
}

/// <summary>
/// The memory a run would hold, estimated from its spec alone before anything is allocated, and the memory this
/// machine has: a spec that cannot fit (B = 10^9, a policy of 10^12 weights) is refused when the file is read
/// instead of growing until the kernel's OOM killer ends it and leaves the run "running".
/// </summary>
public static class MemoryLimit
{
    /// <summary>
    /// A rollout's own records while its batch is in flight: the Sampler's object, the messages to the Scorer and
    /// the Learner, the recorded event and the serializers' buffers. Measured: a categorical bandit run at
    /// B = 20,000 and at 60,000 peaked 14-20 KB higher per rollout than one at B = 100.
    /// </summary>
    public const double BytesPerRollout = 16 * 1024;

    /// <summary>Float32 copies of the weights a run keeps: policy, reference, gradient, Adam's two moments, the
    /// Sampler's policy and reference, and serialized checkpoints in flight and in the cache.</summary>
    public const int WeightCopies = 10;

    /// <summary>The estimate, term by term; null when the task kind has no footprint (it is refused elsewhere).</summary>
    public static IReadOnlyList<MemoryTerm>? Estimate(RunSpec spec) => Estimate(spec.Task, spec.Loop, spec.Method.Data);

    public static IReadOnlyList<MemoryTerm>? Estimate(TaskSpec task, LoopSpec loop, DataSource data)
    {
        if (PreferenceTasks.Footprint(task) is not { } footprint)
            return null;
        var prompts = Math.Max(1, task.Bandit?.Prompts ?? 1);
        // An evaluation draws ceil(eval_samples / prompts) responses for every prompt of the pool.
        var evaluation = Math.Ceiling((double)loop.EvalSamples / prompts) * prompts;
        var perRollout = BytesPerRollout + 8 * footprint.TokensPerRollout + 4 * footprint.InferenceNumbersPerSample;
        List<SizeField> held = loop.B >= evaluation ? [new("B", loop.B)] : [new("eval_samples", loop.EvalSamples)];
        var rollouts = Math.Max(loop.B, evaluation);
        if (data == DataSource.Offline)
        {
            rollouts += (double)loop.DatasetPrompts * loop.DatasetResponses;
            held.AddRange([new("dataset_prompts", loop.DatasetPrompts), new("dataset_responses", loop.DatasetResponses)]);
        }
        return
        [
            new("rollouts per batch", rollouts, perRollout, held, footprint.SampleFields),
            new("tensors per minibatch", loop.M, 4 * footprint.TrainingNumbersPerSample, [new("M", loop.M)], footprint.SampleFields),
            new("policy", footprint.Weights, 4.0 * WeightCopies, [], footprint.WeightFields),
        ];
    }

    /// <summary>The memory a run may take here: /proc/meminfo's MemAvailable, or the runtime's limit (a container's) when lower.</summary>
    public static (double Bytes, string Source) Available()
    {
        var runtime = (double)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            if (line is not null && double.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture, out var kb)
                && kb * 1024 < runtime)
                return (kb * 1024, "MemAvailable in /proc/meminfo");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // not Linux, or /proc not mounted: the runtime's figure is all there is
        }
        return (runtime, "the memory the .NET runtime may use here");
    }

    /// <summary>Bytes in the largest unit that keeps the number below 1024: 16.4 TB, 3.2 KB.</summary>
    public static string Format(double bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
        var unit = 0;
        while (bytes >= 1024 && unit < units.Length - 1) { bytes /= 1024; unit++; }
        return unit == 0 ? FormattableString.Invariant($"{bytes:0} B") : FormattableString.Invariant($"{bytes:0.0} {units[unit]}");
    }
}

using static TorchSharp.torch;

namespace PrefTune.Training;

/// <summary>Process-wide libtorch settings. Results are bit-identical across processes only at equal thread counts.</summary>
public static class TorchRuntime
{
    private static readonly Lock Gate = new();

    /// <summary>Held while seeding libtorch's global generator and building modules from it, so that two
    /// runs initialising at once in one process cannot interleave their draws.</summary>
    public static readonly Lock GlobalSeedLock = new();

    /// <summary>
    /// Held for all libtorch work of the stage services in this process (sampling, training). With every service in
    /// one process, a Sampler running ahead of the Learner (max_staleness &gt; 0) would otherwise use libtorch from
    /// two threads at once, which TorchSharp does not promise to survive; services in separate processes overlap.
    /// </summary>
    public static readonly SemaphoreSlim Work = new(1, 1);

    /// <summary>Sets libtorch's intra-op thread count if it differs (cheap to call before every command).</summary>
    public static void UseThreads(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "torch_threads must be at least 1");
        lock (Gate)
        {
            if (get_num_threads() != threads)
                set_num_threads(threads);
        }
    }
}

using System.Runtime.InteropServices;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>The few Linux calls process supervision needs and .NET does not offer.</summary>
internal static class LibC
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    private const int PR_SET_PDEATHSIG = 1;

    [DllImport("libc", SetLastError = true)]
    private static extern int prctl(int option, nint arg2, nint arg3, nint arg4, nint arg5);

    [DllImport("libc")]
    public static extern int getppid();

    [DllImport("libc", SetLastError = true)]
    public static extern int setpgid(int pid, int pgid);

    [DllImport("libc", SetLastError = true)]
    public static extern int kill(int pid, int signal);

    /// <summary>Ends the process now: no finalizers, no shutdown handlers (a second Ctrl-C).</summary>
    [DllImport("libc", EntryPoint = "_exit")]
    public static extern void Exit(int status);

    /// <summary>Asks the kernel to SIGKILL this process when the thread that started it ends.</summary>
    public static bool SetParentDeathSignal(int signal) => prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0) == 0;
}

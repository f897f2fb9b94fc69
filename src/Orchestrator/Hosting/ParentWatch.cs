namespace PrefTune.Orchestrator.Hosting;

/// <summary>
/// The child side of <see cref="ServiceProcesses"/>: a service started by an Orchestrator dies with it, even when
/// the Orchestrator is SIGKILLed and no shutdown code of its runs. The Orchestrator passes its pid in
/// <see cref="Variable"/>; the child asks the kernel for SIGKILL on its parent's death (prctl PR_SET_PDEATHSIG),
/// then checks that its parent is still that pid (had it died before the prctl, the child was already re-parented
/// and no signal will come). PDEATHSIG follows the parent *thread* that forked the child, so the Orchestrator
/// starts children from a thread that lives as long as they do. The child also leaves the terminal's process
/// group: a Ctrl-C goes to the Orchestrator alone, which stops its services itself, in order.
/// </summary>
public static class ParentWatch
{
    public const string Variable = "PREFTUNE_PARENT_PID";

    /// <summary>Call first thing in a service process; does nothing unless an Orchestrator started it.</summary>
    public static void Arm()
    {
        if (!OperatingSystem.IsLinux() || !int.TryParse(Environment.GetEnvironmentVariable(Variable), out var parent))
            return;
        LibC.setpgid(0, 0);
        if (!LibC.SetParentDeathSignal(LibC.SIGKILL))
            Console.Error.WriteLine("preftune serve: could not ask for a parent-death signal; this service may outlive its orchestrator");
        if (LibC.getppid() != parent)
        {
            Console.Error.WriteLine($"preftune serve: the orchestrator (pid {parent}) is already gone; exiting");
            LibC.Exit(1);
        }
    }
}

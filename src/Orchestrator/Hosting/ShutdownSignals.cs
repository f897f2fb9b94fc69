using System.Runtime.InteropServices;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>
/// Ctrl-C, SIGINT and SIGTERM for the whole `preftune` process. The first one cancels <see cref="Token"/>, which
/// every command passes down: a run abandons the stage request under way, records <c>RunStopped</c> and returns;
/// services stop; the process exits with 128 + the signal (130, 143). A second one exits at once (children die
/// with it: <see cref="ParentWatch"/>). The Orchestrator's host has no console lifetime of its own
/// (<see cref="OrchestratorHost"/>), so nothing else swallows these signals.
/// </summary>
public static class ShutdownSignals
{
    private static readonly CancellationTokenSource Source = new();
    private static readonly List<PosixSignalRegistration> Registrations = [];
    private static int _received;

    /// <summary>The first signal received, if any.</summary>
    public static PosixSignal? Received { get; private set; }

    /// <summary>"SIGINT" or "SIGTERM", as recorded in RunStopped; null before any signal.</summary>
    public static string? Name => Received is { } signal ? NameOf(signal) : null;

    /// <summary>The exit code a stopped command ends with: 128 + signal number, as a shell reports it.</summary>
    public static int ExitCode => Received is { } signal ? CodeOf(signal) : 0;

    public static CancellationToken Token => Source.Token;

    /// <summary>Starts listening (once per process); returns <see cref="Token"/>.</summary>
    public static CancellationToken Install()
    {
        lock (Registrations)
        {
            if (Registrations.Count == 0)
            {
                Registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle));
                Registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle));
            }
        }
        return Token;
    }

    private static void Handle(PosixSignalContext context)
    {
        context.Cancel = true; // the stop is ours to make, in order
        if (Interlocked.Increment(ref _received) == 1)
        {
            Received = context.Signal;
            Console.Error.WriteLine($"preftune: {NameOf(context.Signal)}: stopping (the step under way is abandoned and recorded as such); press Ctrl-C again to quit at once");
            // cancellation callbacks run synchronously: not on the runtime's signal thread
            _ = Task.Run(Source.Cancel);
        }
        else
        {
            Console.Error.WriteLine($"preftune: {NameOf(context.Signal)} again: quitting now");
            LibC.Exit(CodeOf(Received ?? context.Signal));
        }
    }

    private static string NameOf(PosixSignal signal) => signal == PosixSignal.SIGTERM ? "SIGTERM" : "SIGINT";

    private static int CodeOf(PosixSignal signal) => signal == PosixSignal.SIGTERM ? 128 + 15 : 128 + 2;
}

using Marten.Schema;

namespace PrefTune.Storage.Events;

/// <summary>
/// Who owns a run that is under way, and until when: one document per run, upserted by the Orchestrator that
/// drives it every third of its lifetime and released when the run ends. A heartbeat appended to the run's event
/// stream would add thousands of events that are no fact of the run to every stream that `show`, replay, resume and
/// the audit fold; who holds a run now is current state, so it is one row, overwritten, with optimistic concurrency
/// so that two Orchestrators cannot both take an expired lease.
/// </summary>
public sealed class RunLease
{
    /// <summary>The RunId.</summary>
    public Guid Id { get; set; }
    /// <summary>The owner's machine name and boot id: together they say whether a reader is on the owner's machine.</summary>
    public string Host { get; set; } = "";
    public string BootId { get; set; } = "";
    public int ProcessId { get; set; }
    /// <summary>The owner process's start time (clock ticks since boot, /proc/PID/stat): a reused pid is not the owner.</summary>
    public long ProcessStart { get; set; }
    public DateTimeOffset AcquiredAt { get; set; }
    public DateTimeOffset RenewedAt { get; set; }
    /// <summary>Past this, a reader on another machine takes the owner for gone.</summary>
    public DateTimeOffset ExpiresAt { get; set; }
    /// <summary>Set when the run ended (completed, failed or stopped) and its owner let go.</summary>
    public DateTimeOffset? ReleasedAt { get; set; }
    /// <summary>Marten's optimistic-concurrency version.</summary>
    [Version]
    public Guid Version { get; set; }
}

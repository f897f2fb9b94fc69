using Marten;
using JasperFx;
using Marten.Exceptions;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;

namespace PrefTune.Orchestrator.Runs;

/// <summary>This process as a lease owner: machine, boot, pid and the pid's start time.</summary>
public sealed record LeaseOwner(string Host, string BootId, int ProcessId, long ProcessStart)
{
    public static LeaseOwner Current { get; } = new(Environment.MachineName, ReadBootId(), Environment.ProcessId, StartTimeOf(Environment.ProcessId) ?? 0);

    public bool IsOwnerOf(RunLease lease) =>
        lease.Host == Host && lease.BootId == BootId && lease.ProcessId == ProcessId && lease.ProcessStart == ProcessStart;

    public bool SameMachineAs(RunLease lease) => lease.Host == Host && lease.BootId == BootId && BootId != "";

    /// <summary>Field 22 of /proc/PID/stat (clock ticks after boot); null when no such process runs (or it is a zombie).</summary>
    public static long? StartTimeOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // the command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields[0] == "Z" ? null : long.Parse(fields[19]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private static string ReadBootId()
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }
}

/// <summary>`resume` (or `run --resume`) of a run whose owner is alive: refused, it would write the stream twice.</summary>
public sealed class RunIsLiveException(string message) : ArgumentException(message);

/// <summary>
/// The leases of the runs this process drives (<see cref="RunLease"/>): taken when a run starts or resumes (refused
/// if another live owner holds it), renewed every third of <see cref="PrefTuneOptions.LeaseSeconds"/>, released when
/// the run ends. A reader tells a live run from an abandoned one by <see cref="IsLive"/>, not by guessing from times:
/// on the owner's machine the owner process is looked up (a dead or replaced pid is gone at once), elsewhere the
/// lease must not have expired (clocks are taken to agree within seconds; leases last 30 s by default).
/// </summary>
public sealed class RunLeases(IDocumentStore store, PrefTuneOptions options)
{
    private TimeSpan Lifetime => TimeSpan.FromSeconds(options.LeaseSeconds);

    public async Task<RunLeaseHold> AcquireAsync(Guid runId, CancellationToken ct)
    {
        var here = LeaseOwner.Current;
        await using var session = store.LightweightSession();
        var existing = await session.LoadAsync<RunLease>(runId, ct);
        var now = DateTimeOffset.UtcNow;
        if (existing is not null && !here.IsOwnerOf(existing) && IsLive(existing, now))
            throw Live(runId, existing, now);
        var lease = existing ?? new RunLease { Id = runId };
        lease.Host = here.Host;
        lease.BootId = here.BootId;
        lease.ProcessId = here.ProcessId;
        lease.ProcessStart = here.ProcessStart;
        lease.AcquiredAt = lease.RenewedAt = now;
        lease.ExpiresAt = now + Lifetime;
        lease.ReleasedAt = null;
        if (existing is null) session.Insert(lease);
        else session.Store(lease);
        try
        {
            await session.SaveChangesAsync(ct);
        }
        catch (Exception e) when (e is ConcurrencyException or ConcurrentUpdateException or DocumentAlreadyExistsException)
        {
            throw new RunIsLiveException($"run {runId} was taken by another orchestrator a moment ago; see `preftune runs`");
        }
        return new RunLeaseHold(this, runId, Lifetime);
    }

    /// <summary>Refuses early (before any service starts) a run that a live owner holds; <see cref="AcquireAsync"/> decides.</summary>
    public static async Task EnsureNotLiveAsync(IDocumentStore store, Guid runId, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var lease = await session.LoadAsync<RunLease>(runId, ct);
        var now = DateTimeOffset.UtcNow;
        if (lease is not null && !LeaseOwner.Current.IsOwnerOf(lease) && IsLive(lease, now))
            throw Live(runId, lease, now);
    }

    /// <summary>Moves the expiry on (or, with <paramref name="release"/>, lets go), if this process still holds the lease.</summary>
    internal async Task<bool> RenewAsync(Guid runId, bool release, CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        var lease = await session.LoadAsync<RunLease>(runId, ct);
        if (lease is null || !LeaseOwner.Current.IsOwnerOf(lease)) return false;
        var now = DateTimeOffset.UtcNow;
        lease.RenewedAt = now;
        lease.ExpiresAt = now + Lifetime;
        lease.ReleasedAt = release ? now : null;
        session.Store(lease);
        await session.SaveChangesAsync(ct);
        return true;
    }

    /// <summary>Whether the lease's owner still runs the run (see the class comment).</summary>
    public static bool IsLive(RunLease lease, DateTimeOffset now) => IsLive(lease, now, LeaseOwner.Current);

    public static bool IsLive(RunLease lease, DateTimeOffset now, LeaseOwner reader)
    {
        if (lease.ReleasedAt is not null) return false;
        if (reader.SameMachineAs(lease)) return LeaseOwner.StartTimeOf(lease.ProcessId) == lease.ProcessStart;
        return lease.ExpiresAt > now;
    }

    /// <summary>The status to show: a recorded "running" becomes "abandoned" when no live owner holds the run.</summary>
    public static string StatusOf(string recorded, RunLease? lease, DateTimeOffset now) =>
        recorded == "running" && (lease is null || !IsLive(lease, now)) ? "abandoned" : recorded;

    /// <summary>The leases of <paramref name="runIds"/> (runs without one are absent).</summary>
    public static async Task<IReadOnlyDictionary<Guid, RunLease>> LoadAsync(IQuerySession session, IReadOnlyCollection<Guid> runIds, CancellationToken ct) =>
        runIds.Count == 0 ? new Dictionary<Guid, RunLease>()
            : (await session.LoadManyAsync<RunLease>(ct, runIds)).ToDictionary(l => l.Id);

    private static RunIsLiveException Live(Guid runId, RunLease lease, DateTimeOffset now) => new(
        $"run {runId} is still running: pid {lease.ProcessId} on {lease.Host} holds it (lease renewed {(now - lease.RenewedAt).TotalSeconds:0} s ago). " +
        "Stop that process first (Ctrl-C there), or wait until `preftune runs` shows the run as abandoned.");
}

/// <summary>A lease this process holds: renewed in the background until disposed, then released.</summary>
public sealed class RunLeaseHold : IAsyncDisposable
{
    private readonly RunLeases _leases;
    private readonly Guid _runId;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;

    internal RunLeaseHold(RunLeases leases, Guid runId, TimeSpan lifetime)
    {
        (_leases, _runId) = (leases, runId);
        _renewing = RenewAsync(lifetime / 3, _stop.Token);
    }

    private async Task RenewAsync(TimeSpan every, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(every);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                try
                {
                    if (!await _leases.RenewAsync(_runId, release: false, ct))
                    {
                        Console.Error.WriteLine($"preftune: the lease of run {_runId} was taken by another process; this one no longer owns the run");
                        return;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // a database restarting: the next tick tries again, well within the lease's lifetime
                }
            }
        }
        catch (OperationCanceledException)
        {
            // released
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewing;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _leases.RenewAsync(_runId, release: true, timeout.Token);
        }
        catch (Exception e)
        {
            // unreleased, the lease still ends: at once on this machine (the process is gone), by expiry elsewhere
            Console.Error.WriteLine($"preftune: could not release the lease of run {_runId}: {e.Message}");
        }
        _stop.Dispose();
    }
}

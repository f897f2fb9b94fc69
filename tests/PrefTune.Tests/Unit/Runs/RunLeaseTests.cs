using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Events;
using Xunit;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>A run is live while its lease's owner runs: looked up on its own machine, by expiry from elsewhere.</summary>
public sealed class RunLeaseTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly LeaseOwner Here = LeaseOwner.Current;

    private static RunLease Held(string host, string boot, int pid, long start, TimeSpan expiresIn) => new()
    {
        Id = Guid.NewGuid(), Host = host, BootId = boot, ProcessId = pid, ProcessStart = start,
        RenewedAt = Now - TimeSpan.FromSeconds(5), ExpiresAt = Now + expiresIn,
    };

    [Fact]
    public void A_lease_held_by_this_process_is_live_even_past_its_expiry()
    {
        Assert.True(RunLeases.IsLive(Held(Here.Host, Here.BootId, Here.ProcessId, Here.ProcessStart, TimeSpan.FromSeconds(-60)), Now, Here));
    }

    [Fact]
    public void On_the_owners_machine_a_reused_pid_is_not_the_owner()
    {
        // this process's pid, but a start time it never had: the owner died and its pid went to someone else
        Assert.False(RunLeases.IsLive(Held(Here.Host, Here.BootId, Here.ProcessId, Here.ProcessStart + 1, TimeSpan.FromSeconds(60)), Now, Here));
    }

    [Fact]
    public void From_another_machine_only_the_expiry_counts()
    {
        Assert.True(RunLeases.IsLive(Held("elsewhere", "other-boot", 1, 1, TimeSpan.FromSeconds(10)), Now, Here));
        Assert.False(RunLeases.IsLive(Held("elsewhere", "other-boot", 1, 1, TimeSpan.FromSeconds(-1)), Now, Here));
    }

    [Fact]
    public void A_released_lease_is_not_live()
    {
        var lease = Held(Here.Host, Here.BootId, Here.ProcessId, Here.ProcessStart, TimeSpan.FromSeconds(60));
        lease.ReleasedAt = Now;
        Assert.False(RunLeases.IsLive(lease, Now, Here));
    }

    [Theory]
    [InlineData("running", true, "running")]
    [InlineData("running", false, "abandoned")]
    [InlineData("stopped", false, "stopped")]
    [InlineData("completed", false, "completed")]
    public void Runs_show_a_running_run_without_a_live_owner_as_abandoned(string recorded, bool live, string shown)
    {
        var lease = Held("elsewhere", "other-boot", 1, 1, TimeSpan.FromSeconds(live ? 10 : -10));
        Assert.Equal(shown, RunLeases.StatusOf(recorded, lease, Now));
    }
}

using PrefTune.Messages;
using PrefTune.Tests.Integration.Faults;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Lifecycle;

/// <summary>
/// `preftune run --broker` (no --external-services) supervises the services it starts: a learner SIGKILLed mid-run
/// is started again and the run completes, with the restart recorded on it; SIGKILL of the orchestrator itself takes
/// its children with it (no process is left), and `runs` tells that run, once abandoned, from a live one.
/// </summary>
[Collection(FaultsCollection.Name)]
public sealed class When_a_child_service_dies(FaultServers servers, ITestOutputHelper output)
{
    [Fact]
    public async Task A_killed_learner_is_restarted_and_the_run_completes()
    {
        const int steps = 120;
        await using var world = await LifecycleRun.CreateAsync(servers, output, "learner", LifecycleRun.Experiment(steps, "reinforce"));
        var run = world.Start("supervisor", "run", world.File, "--json", "--output", Path.Combine(world.Folder, "out"), "--broker", world.Broker);
        await world.WaitForAsync("update_applied", 8, run, TimeSpan.FromSeconds(90));
        var learner = LifecycleRun.ChildrenOf(run.Id).Single(pid => File.ReadAllText($"/proc/{pid}/cmdline").Contains("learner"));
        Assert.Equal(0, Kill(learner));
        world.Note($"killed the learner (pid {learner})");

        Assert.True(await run.WaitForExitAsync(TimeSpan.FromSeconds(150)), $"the run did not end\n{world.Diagnostics()}");
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}\n{world.Diagnostics()}");
        var recorded = Assert.Single(await world.RunsAsync());
        RunInvariants.AssertCompleted([.. recorded.Events], steps);
        var restart = Assert.Single(recorded.Events.OfType<ServiceRestarted>());
        Assert.Equal(("learner", learner, 137), (restart.Role, restart.OldProcessId, restart.ExitCode));
        Assert.Contains($"the learner service (pid {learner}) exited", run.Error);
    }

    [Fact]
    public async Task A_killed_orchestrator_leaves_no_process_and_its_run_shows_abandoned()
    {
        await using var world = await LifecycleRun.CreateAsync(servers, output, "orphans", LifecycleRun.Experiment(400, "reinforce"));
        var run = world.Start("owner", "run", world.File, "--json", "--output", Path.Combine(world.Folder, "out"), "--broker", world.Broker);
        await world.WaitForAsync("update_applied", 8, run, TimeSpan.FromSeconds(90));
        var runId = Assert.Single(await world.RunsAsync()).Started.RunId;

        // live: listed as running, and a second owner is refused
        Assert.Equal("running", (await world.ListedStatusesAsync())[runId]);
        var refused = await world.RunToEndAsync(TimeSpan.FromSeconds(60), "resume", runId.ToString());
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("is still running", refused.Error);
        Assert.DoesNotContain("   at ", refused.Error);

        var children = LifecycleRun.ChildrenOf(run.Id);
        Assert.Equal(3, children.Count);
        Assert.False(run.HasExited, "the run ended before the orchestrator could be killed: give it more steps");
        var held = (await world.LeaseAsync(runId))!;
        Assert.Equal(run.Id, held.ProcessId);
        Assert.True(held.RenewedAt > held.AcquiredAt, "the owner never renewed its lease (renewed every second here)");
        run.KillAlone();
        world.Note($"killed the orchestrator (pid {run.Id}); its children were {string.Join(", ", children)}");
        Assert.Empty(await LifecycleRun.WaitUntilGoneAsync(children, TimeSpan.FromSeconds(10)));

        Assert.Equal("abandoned", (await world.ListedStatusesAsync())[runId]);
        var resumed = await world.RunToEndAsync(TimeSpan.FromSeconds(120), "resume", runId.ToString(), "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.True(Assert.Single(await world.RunsAsync()).Completed);
        var released = (await world.LeaseAsync(runId))!;
        Assert.NotEqual(run.Id, released.ProcessId); // taken over by the resume,
        Assert.NotNull(released.ReleasedAt);         // and let go when the run completed
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int kill(int pid, int signal);

    private static int Kill(int pid) => kill(pid, 9);
}

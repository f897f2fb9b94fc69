using System.Text.Json;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.Tests.Integration.Faults;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Lifecycle;

/// <summary>
/// An experiment of three methods whose orchestrator is SIGKILLed during its second run is continued as a whole by
/// `preftune run FILE --resume`: the first run is kept, the second resumed, the third started, and the report of all
/// three is written. A study stopped by Ctrl-C in its second run is continued by `preftune study FILE --resume`.
/// </summary>
[Collection(FaultsCollection.Name)]
public sealed class When_an_experiment_or_study_is_cut_short(FaultServers servers, ITestOutputHelper output)
{
    private const int Steps = 60;

    [Fact]
    public async Task Run_resume_keeps_finished_runs_resumes_the_unfinished_starts_the_missing_and_writes_the_report()
    {
        await using var world = await LifecycleRun.CreateAsync(servers, output, "experiment", LifecycleRun.Experiment(Steps, "reinforce", "dpo", "best-of-n"));
        var first = world.Start("killed", "run", world.File, "--json", "--output", Path.Combine(world.Folder, "out"));
        await world.WaitForAsync("update_applied", Steps + 6, first, TimeSpan.FromSeconds(120));
        first.KillAlone();
        world.Note("killed the orchestrator");

        var before = await world.RunsAsync();
        Assert.Equal(2, before.Count);
        Assert.True(before[0].Completed);
        Assert.False(before[1].Completed, "the second run completed before the kill: give it more steps");
        Assert.Equal("abandoned", (await world.ListedStatusesAsync())[before[1].Started.RunId]);

        var report = Path.Combine(world.Folder, "resumed");
        var resume = await world.RunToEndAsync(TimeSpan.FromSeconds(150), "run", world.File, "--resume", "--json", "--output", report);
        Assert.True(resume.ExitCode == 0, resume.Error + world.Diagnostics());

        var after = await world.RunsAsync();
        Assert.Equal(3, after.Count);
        Assert.Equal(before[0].Started.RunId, after[0].Started.RunId);
        Assert.Empty(after[0].Events.OfType<RunResumed>());
        Assert.Equal(before[1].Started.RunId, after[1].Started.RunId);
        Assert.Single(after[1].Events.OfType<RunResumed>());
        Assert.Equal(["reinforce", "dpo", "best-of-n"], after.Select(r => r.Started.Spec.Method.Name));
        Assert.All(after, r => Assert.Empty(RunAudit.Check(r)));

        using var summary = JsonDocument.Parse(resume.Output);
        var runIds = summary.RootElement.GetProperty("methods").EnumerateArray().Select(m => m.GetProperty("run_ids")[0].GetGuid()).ToList();
        Assert.Equal(after.Select(r => r.Started.RunId), runIds);
        Assert.True(File.Exists(Path.Combine(report, "summary.json")));
        Assert.True(File.Exists(Path.Combine(report, "gold_reward.png")));
    }

    /// <summary>The command-line study test's two runs, long enough (60 steps each) to be stopped in the second.</summary>
    private const int StudySteps = 60;
    private static readonly string Study = Studies.When_the_command_line_runs_a_study.Study.Replace("gradient_steps: 8", $"gradient_steps: {StudySteps}");

    [Fact]
    public async Task Study_resume_keeps_the_finished_run_resumes_the_stopped_one_and_writes_the_report()
    {
        await using var world = await LifecycleRun.CreateAsync(servers, output, "study", Study);
        var first = world.Start("stopped", "study", world.File, "--json", "--output", Path.Combine(world.Folder, "out"));
        await world.WaitForAsync("update_applied", StudySteps + 6, first, TimeSpan.FromSeconds(120));
        first.Signal(2);
        Assert.True(await first.WaitForExitAsync(TimeSpan.FromSeconds(45)), world.Diagnostics());
        Assert.Equal(130, first.ExitCode);

        var before = await world.RunsAsync();
        Assert.Equal(2, before.Count);
        Assert.True(before[0].Completed);
        Assert.IsType<RunStopped>(before[1].Events[^1]);

        var report = Path.Combine(world.Folder, "resumed");
        var resume = await world.RunToEndAsync(TimeSpan.FromSeconds(150), "study", world.File, "--resume", "--json", "--output", report);
        Assert.True(resume.ExitCode == 0, resume.Error + world.Diagnostics());
        var after = await world.RunsAsync();
        Assert.Equal(before.Select(r => r.Started.RunId), after.Select(r => r.Started.RunId));
        Assert.Empty(after[0].Events.OfType<RunResumed>());
        Assert.Single(after[1].Events.OfType<RunResumed>());
        Assert.All(after, r => Assert.Empty(RunAudit.Check(r)));
        using var summary = JsonDocument.Parse(resume.Output);
        Assert.Equal(2, summary.RootElement.GetProperty("runs").GetInt32());
        Assert.True(File.Exists(Path.Combine(report, "study.md")));
    }
}

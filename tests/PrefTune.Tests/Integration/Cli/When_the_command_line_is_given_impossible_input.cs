using System.Diagnostics;
using System.Text.Json;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>Input that cannot work is refused by a real `preftune` process with exit 2 and a message, before any run is recorded.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_is_given_impossible_input(PostgresServer postgres) : IAsyncLifetime
{
    private const string Experiment = """
        name: cli-limits
        seeds: [3]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32}
        loop: {B: 20, C: 10, M: 10, T: 1, gradient_steps: 4, learning_rate: 0.01, eval_every: 4, eval_samples: 100}
        methods:
          - {name: dpo, data: online}
        """;

    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-limits-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        await postgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task B_and_M_of_a_billion_are_refused_at_once_naming_the_estimate_and_no_run_is_recorded()
    {
        var file = await WriteAsync("huge.yaml", Experiment.Replace("B: 20", "B: 1000000000").Replace("M: 10", "M: 1000000000"));
        var clock = Stopwatch.StartNew();

        var run = await PrefTuneAsync("run", file, "--json", "--output", Path.Combine(_folder, "out"));

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("loop.B (line 6): the run would hold about", run.Error);
        Assert.Contains("M = 1000000000", run.Error);
        Assert.Contains("of memory available", run.Error);
        Assert.DoesNotContain("   at ", run.Error);   // a message, not a stack trace
        Assert.Equal("", run.Output.Trim());
        // it never got as far as allocating: well under the seconds a run's start-up (database, bus, reference fit) takes
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{clock.Elapsed}");
        Assert.Equal(0, await RecordedRunsAsync());
    }

    [Fact]
    public async Task An_output_folder_that_cannot_be_written_is_refused_before_any_run_starts()
    {
        var file = await WriteAsync("ok.yaml", Experiment);
        // A folder under a regular file cannot be created even by root, for whom permission bits are no obstacle.
        var blocker = Path.Combine(_folder, "a-file");
        await File.WriteAllTextAsync(blocker, "");

        var run = await PrefTuneAsync("run", file, "--json", "--output", Path.Combine(blocker, "out"));

        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"--output {Path.Combine(blocker, "out")}: the report folder cannot be written", run.Error);
        Assert.Equal("", run.Output.Trim());
        Assert.Equal(0, await RecordedRunsAsync());
    }

    private async Task<int> RecordedRunsAsync()
    {
        var runs = await PrefTuneAsync("runs", "--json");
        Assert.True(runs.ExitCode == 0, runs.Error);
        using var listed = JsonDocument.Parse(runs.Output);
        return listed.RootElement.GetArrayLength();
    }

    private async Task<string> WriteAsync(string name, string text)
    {
        var file = Path.Combine(_folder, name);
        await File.WriteAllTextAsync(file, text);
        return file;
    }

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(params string[] args) =>
        PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, args);
}

using System.Text.Json;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>`preftune show` as a user runs it: the staleness distributions, and the lineage of a checkpoint.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_shows_a_run(PostgresServer postgres) : IAsyncLifetime
{
    // B = M = C = 10, T = 1: one gradient step and one checkpoint per iteration, so version V comes from steps 1..V
    private const string Experiment = """
        name: cli-lineage
        seeds: [5]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32}
        loop: {B: 10, C: 10, M: 10, T: 1, gradient_steps: 4, learning_rate: 0.01, eval_every: 4, eval_samples: 100}
        methods:
          - {name: dpo, data: online}
        """;

    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-show-").FullName;
    private string _runId = "";

    public async Task InitializeAsync()
    {
        var file = Path.Combine(_folder, "cli-lineage.yaml");
        await File.WriteAllTextAsync(file, Experiment);
        var run = await PrefTuneAsync("run", file, "--json", "--output", Path.Combine(_folder, "out"));
        Assert.True(run.ExitCode == 0, run.Error);
        using var summary = JsonDocument.Parse(run.Output);
        _runId = summary.RootElement.GetProperty("methods")[0].GetProperty("run_ids")[0].GetString()!;
    }

    public async Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        await postgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task Show_gives_the_distributions_and_the_lineage_of_a_checkpoint()
    {
        var show = await PrefTuneAsync("show", _runId, "--json");
        Assert.True(show.ExitCode == 0, show.Error);
        using (var shown = JsonDocument.Parse(show.Output))
        {
            var staleness = shown.RootElement.GetProperty("staleness");
            // every step learns from samples its own weights just drew: lag 0, used once
            Assert.Equal(0, staleness.GetProperty("stats/lag_max").GetInt32());
            Assert.Equal(4 * 10, staleness.GetProperty("lag_histogram").GetProperty("0").GetInt32());
            Assert.Equal(4 * 10, staleness.GetProperty("reuse_histogram").GetProperty("1").GetInt32());
            Assert.Equal(4 * 10, staleness.GetProperty("importance_ratio").GetProperty("count").GetInt32());
            Assert.Equal(1, staleness.GetProperty("importance_ratio").GetProperty("median").GetDouble(), 1e-5);
            Assert.Equal(0, staleness.GetProperty("stats/staleness_max").GetInt32());
            Assert.Equal(4, shown.RootElement.GetProperty("steps").GetArrayLength());
            Assert.Equal(0, shown.RootElement.GetProperty("steps")[3].GetProperty("stats/lag_mean").GetDouble());
            Assert.Equal(4, shown.RootElement.GetProperty("batches").GetArrayLength());
        }

        var lineage = await PrefTuneAsync("show", _runId, "--checkpoint", "3", "--json");
        Assert.True(lineage.ExitCode == 0, lineage.Error);
        using (var produced = JsonDocument.Parse(lineage.Output))
        {
            var root = produced.RootElement;
            Assert.Equal(3, root.GetProperty("checkpoint").GetProperty("version").GetInt32());
            Assert.Matches("^[0-9a-f]{64}$", root.GetProperty("checkpoint").GetProperty("sha256").GetString());
            Assert.StartsWith("pg://sha256/", root.GetProperty("checkpoint").GetProperty("uri").GetString());
            var updates = root.GetProperty("updates").EnumerateArray().ToList();
            Assert.Equal([1, 2, 3], updates.Select(u => u.GetProperty("step").GetInt32()));
            Assert.Equal([0, 1, 2], updates.Select(u => u.GetProperty("sampling_versions").EnumerateArray().Select(v => v.GetInt32()).Distinct().Single()));
            Assert.Equal(30, root.GetProperty("sample_ids").GetArrayLength());
            Assert.Equal(30, updates.SelectMany(u => u.GetProperty("sample_ids").EnumerateArray().Select(id => id.GetString())).Distinct().Count());
            Assert.Equal(3, root.GetProperty("batch_ids").GetArrayLength());
        }

        var plot = new FileInfo(Path.Combine(_folder, "out", "staleness.png"));
        Assert.True(plot.Exists && plot.Length > 0, plot.FullName);

        var text = await PrefTuneAsync("show", _runId);
        Assert.True(text.ExitCode == 0, text.Error);
        Assert.Contains("importance ratio", text.Output);
        Assert.Contains("lag: (step, sample) uses", text.Output);
        Assert.Contains("reuse: samples used n times", text.Output);
    }

    [Fact]
    public async Task A_version_never_published_is_bad_input_naming_the_run_and_the_version()
    {
        var show = await PrefTuneAsync("show", _runId, "--checkpoint", "99");

        Assert.Equal(2, show.ExitCode);
        Assert.Contains("policy version 99", show.Error);
        Assert.Contains(_runId, show.Error);
        Assert.Equal("", show.Output.Trim());
    }

    [Fact]
    public async Task A_checkpoint_that_is_not_a_number_says_what_is_expected()
    {
        var show = await PrefTuneAsync("show", _runId, "--checkpoint", "abc");

        Assert.Equal(2, show.ExitCode);
        Assert.Contains("--checkpoint abc: expected a whole number", show.Error);
        Assert.Contains("published: 0-4", show.Error);
        Assert.Equal("", show.Output.Trim());
    }

    [Fact]
    public async Task Replay_refuses_a_set_value_with_the_experiment_file_s_message_and_records_no_run()
    {
        var file = Path.Combine(_folder, "negative-rate.yaml");
        await File.WriteAllTextAsync(file, Experiment.Replace("learning_rate: 0.01", "learning_rate: -1"));
        var fromFile = await PrefTuneAsync("run", file, "--json");
        Assert.Equal(2, fromFile.ExitCode);
        var rule = fromFile.Error.Split("loop.learning_rate (line 6): ")[1].Trim();   // "learning_rate = -1 is not positive; allowed: ..."

        var replay = await PrefTuneAsync("replay", _runId, "--method", "ipo", "--set", "learning_rate=-1");

        Assert.Equal(2, replay.ExitCode);
        Assert.Contains($"--set: learning_rate: {rule}", replay.Error);
        Assert.DoesNotContain("   at ", replay.Error);
        Assert.Equal("", replay.Output.Trim());
        var runs = await PrefTuneAsync("runs", "--json");
        using var listed = JsonDocument.Parse(runs.Output);
        Assert.Equal(1, listed.RootElement.GetArrayLength());
    }

    [Fact]
    public async Task The_summary_prints_whole_run_ids_that_show_accepts()
    {
        var file = Path.Combine(_folder, "text.yaml");
        await File.WriteAllTextAsync(file, Experiment.Replace("name: cli-lineage", "name: cli-text").Replace("gradient_steps: 4", "gradient_steps: 1"));

        var run = await PrefTuneAsync("run", file, "--output", Path.Combine(_folder, "text-out"));

        Assert.True(run.ExitCode == 0, run.Error);
        var id = Assert.Single(run.Output.Split('\n'), l => l.StartsWith("run ", StringComparison.Ordinal)).Split(' ')[1];
        Assert.True(Guid.TryParse(id, out _), id);
        var show = await PrefTuneAsync("show", id, "--json");
        Assert.True(show.ExitCode == 0, show.Error);
        using var shown = JsonDocument.Parse(show.Output);
        Assert.Equal(id, shown.RootElement.GetProperty("run_id").GetString());
    }

    [Fact]
    public async Task Runs_in_a_pipe_lists_each_run_by_its_whole_id_within_80_columns()
    {
        var runs = await PrefTuneAsync("runs");

        Assert.True(runs.ExitCode == 0, runs.Error);
        var lines = runs.Output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
        Assert.All(lines, l => Assert.True(l.Length <= 80, l));
        Assert.Contains($"run {_runId}  completed", lines);
        Assert.Contains(lines, l => l.Contains("cli-lineage", StringComparison.Ordinal) && l.Contains("seed 5", StringComparison.Ordinal));
    }

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(params string[] args) =>
        PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, args);
}

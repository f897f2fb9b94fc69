using System.Text.Json;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>The `preftune` entry point as a user runs it: a real process, a real database, JSON out.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_runs_an_experiment(PostgresServer postgres)
{
    private const string Experiment = """
        name: cli-smoke
        seeds: [3]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32}
        loop: {B: 20, C: 10, M: 10, T: 1, gradient_steps: 8, learning_rate: 0.01, eval_every: 4, eval_samples: 200, dataset_prompts: 8}
        methods:
          - {name: dpo, data: online}
          - {name: best-of-n, data: offline}
        """;

    [Fact]
    public async Task Show_reports_the_counts_the_run_printed()
    {
        var folder = Directory.CreateTempSubdirectory("preftune-cli-").FullName;
        var file = Path.Combine(folder, "cli-smoke.yaml");
        await File.WriteAllTextAsync(file, Experiment);
        var schema = PostgresServer.NewSchema();

        var run = await PrefTuneAsync(schema, "run", file, "--json", "--output", Path.Combine(folder, "out"));
        Assert.True(run.ExitCode == 0, run.Error);
        using var summary = JsonDocument.Parse(run.Output);
        var methods = summary.RootElement.GetProperty("methods").EnumerateArray().ToList();
        Assert.Equal(2, methods.Count);
        Assert.True(File.Exists(Path.Combine(folder, "out", "gold_reward.png")));

        foreach (var method in methods)
        {
            var runId = method.GetProperty("run_ids")[0].GetString()!;
            var show = await PrefTuneAsync(schema, "show", runId, "--json");
            Assert.True(show.ExitCode == 0, show.Error);
            using var shown = JsonDocument.Parse(show.Output);
            var counts = shown.RootElement.GetProperty("counts");
            Assert.Equal(method.GetProperty("gradient_steps").GetInt32(), counts.GetProperty("updates").GetInt32());
            Assert.Equal(method.GetProperty("samples_drawn").GetInt32(), counts.GetProperty("samples_generated").GetInt32());
            Assert.Equal(method.GetProperty("final_gold_reward").GetDouble(), shown.RootElement.GetProperty("final").GetProperty("gold_reward").GetDouble(), 12);
            Assert.Equal("completed", shown.RootElement.GetProperty("status").GetString());
        }

        var runs = await PrefTuneAsync(schema, "runs", "--json");
        using var listed = JsonDocument.Parse(runs.Output);
        Assert.Equal(2, listed.RootElement.GetArrayLength());
    }

    [Fact]
    public async Task A_bad_experiment_file_names_the_field_and_starts_nothing()
    {
        var folder = Directory.CreateTempSubdirectory("preftune-cli-").FullName;
        var file = Path.Combine(folder, "bad.yaml");
        await File.WriteAllTextAsync(file, Experiment.Replace("name: dpo", "name: dpoo"));

        var run = await PrefTuneAsync(PostgresServer.NewSchema(), "run", file, "--json");

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("methods[0].name", run.Error);
        Assert.Contains("dpoo", run.Error);
        Assert.Equal("", run.Output.Trim());
    }

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(string schema, params string[] args) =>
        PrefTuneProcess.RunAsync(postgres.ConnectionString, schema, args);
}

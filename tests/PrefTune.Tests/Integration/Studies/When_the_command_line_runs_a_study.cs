using System.Text.Json;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Integration.Cli;
using Xunit;

namespace PrefTune.Tests.Integration.Studies;

/// <summary>`preftune study` as a user runs it: a real process, a real database, summary.json on stdout.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_runs_a_study(PostgresServer postgres)
{
    /// <summary>A small study of two runs (the lifecycle tests lengthen it).</summary>
    internal const string Study = """
        kind: study
        name: cli-study
        seeds: [3]
        task:
          kind: bandit
          bandit: {prompts: 4, hidden: 32, reference_steps: 50}
        rewards:
          - {label: peak70, reward_center: 70}
        loop: {B: 10, C: 10, M: 10, T: 1, gradient_steps: 8, learning_rate: 0.01, eval_every: 4, eval_samples: 200, dataset_prompts: 8}
        methods:
          - {name: dpo, data: offline}
        sweeps:
          - {label: dpo-T, method: dpo, data: online, field: T, values: [2]}
        """;

    [Fact]
    public async Task It_prints_the_summary_and_writes_the_report()
    {
        var folder = Directory.CreateTempSubdirectory("preftune-study-").FullName;
        var file = Path.Combine(folder, "cli-study.yaml");
        await File.WriteAllTextAsync(file, Study);
        var schema = PostgresServer.NewSchema();
        try
        {
            var study = await PrefTuneAsync(schema, "study", file, "--json", "--output", Path.Combine(folder, "out"));

            Assert.True(study.ExitCode == 0, study.Error);
            using var summary = JsonDocument.Parse(study.Output);
            Assert.Equal(2, summary.RootElement.GetProperty("cells").GetArrayLength());
            Assert.Equal(2, summary.RootElement.GetProperty("runs").GetInt32());
            Assert.Equal(File.ReadAllText(Path.Combine(folder, "out", "summary.json")).Trim(), study.Output.Trim());
            foreach (var name in new[] { "gold_reward_peak70.png", "sweep_dpo-T_peak70.png", "table.csv", "table.md", "study.md" })
                Assert.True(File.Exists(Path.Combine(folder, "out", name)), name);
        }
        finally
        {
            await postgres.DropSchemaAsync(schema);
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task A_swept_value_that_breaks_algorithm_1_is_named_and_nothing_starts()
    {
        var folder = Directory.CreateTempSubdirectory("preftune-study-").FullName;
        var file = Path.Combine(folder, "bad.yaml");
        await File.WriteAllTextAsync(file, Study.Replace("values: [2]", "values: [2, 3]"));
        try
        {
            var study = await PrefTuneAsync(PostgresServer.NewSchema(), "study", file, "--json");

            Assert.Equal(2, study.ExitCode);
            Assert.Contains("sweeps[0].values[1]", study.Error);
            Assert.Contains("T = 3: gradient_steps = 8 is not a multiple of T*B/M = 3", study.Error);
            Assert.Equal("", study.Output.Trim());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(string schema, params string[] args) =>
        PrefTuneProcess.RunAsync(postgres.ConnectionString, schema, args);
}

using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Experiments;

/// <summary>task.length.dataset is read when the experiment file is: it must exist and convert, offline methods on it
/// need C = 2, and D_pref's size in the spec is the file's (rows x 2).</summary>
public sealed class When_an_experiment_names_a_preference_dataset : IDisposable
{
    private const string Prompt = "Tom had a red ball.";
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-dataset-experiment-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Pairs(params PreferenceRow[] rows)
    {
        var file = Path.Combine(_folder, $"pairs-{Guid.NewGuid():N}.jsonl");
        PreferenceDataFiles.WriteJsonl(file, rows);
        return file;
    }

    private string Text(string dataset, int c = 2, string data = "offline")
    {
        var prompts = Path.Combine(_folder, "prompts.jsonl");
        File.WriteAllLines(prompts, [$$"""{"prompt": "{{Prompt}}"}"""]);
        return $$"""
            name: lm
            task:
              kind: length
              length:
                prompts: {{prompts}}
                dataset: {{dataset}}
              model:
                path: {{Fixtures.StoriesHf}}
                stop_ids: "1"
                max_new_tokens: 32
            loop:
              B: {{2 * c}}
              C: {{c}}
              M: {{2 * c}}
            methods:
              - name: dpo
                data: {{data}}
            """;
    }

    private static readonly PreferenceRow Good = new(Prompt, Prompt + " Yes.", Prompt + " He played with it all day.", -2, -8, 6, Prompt);

    [Fact]
    public void An_offline_method_reads_it_as_d_pref_of_its_rows_times_two()
    {
        var run = Assert.Single(ExperimentText.Parse(Text(Pairs(Good, Good, Good))).Runs);
        Assert.Equal(3, run.Loop.DatasetPrompts);
        Assert.Equal(2, run.Loop.DatasetResponses);
        Assert.True(Path.IsPathRooted(run.Task.Length!.Dataset));
    }

    [Fact]
    public void C_other_than_2_is_refused_at_C()
    {
        var problem = ExperimentText.ProblemAt(Text(Pairs(Good), c: 4), "loop.C", "needs C = 2");
        Assert.Contains("got C = 4", problem.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_or_a_bad_row_is_named_at_the_field()
    {
        var missing = Path.Combine(_folder, "none.jsonl");
        ExperimentText.ProblemAt(Text(missing), "task.length.dataset", $"{missing}: no such file");

        var bad = Pairs(Good);
        File.AppendAllText(bad, "{\"prompt\": \"x\"}\n");
        ExperimentText.ProblemAt(Text(bad), "task.length.dataset", $"{bad}, line 2, column y_w: missing");

        var stranger = Pairs(Good, Good with { YL = "Something else." });
        ExperimentText.ProblemAt(Text(stranger), "task.length.dataset", $"{stranger}, line 2, column y_l: does not start with the row's prompt");
    }
}

using PrefTune.Tests.Integration.Cli;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.RewardModels;

/// <summary>`preftune train-rm` refusing input as a user meets it (a separate process): each check runs before the
/// database is reached, so no server is needed, and nothing is written.</summary>
public sealed class When_the_command_line_is_given_bad_reward_model_input : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-train-rm-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static Task<(int ExitCode, string Output, string Error)> Run(params string[] args) =>
        PrefTuneProcess.RunAsync(database: "Host=127.0.0.1;Port=1;Username=nobody", schema: "unused", ["train-rm", .. args]);

    /// <summary>A file of one good pair, then <paramref name="lines"/> as they are.</summary>
    private string Dataset(params string[] lines)
    {
        var file = Path.Combine(_folder, "pairs.jsonl");
        PreferenceDataFiles.WriteJsonl(file, [ShorterIsPreferred.Row("One day", " it", " it rained")]);
        File.AppendAllLines(file, lines);
        return file;
    }

    /// <summary>A missing column is the reader's finding, a text that does not continue its prompt the reward model's
    /// (where the pairs are tokenized); both come before the database is reached.</summary>
    [Theory]
    [InlineData("{\"prompt\": \"Once\", \"y_w\": \"Once upon\", \"y_l\": \"Once upon a time\", \"y_w_score\": -1, \"y_l_score\": -5, \"y_ref\": null}",
        "line 2, column score_diff: missing")]
    [InlineData("{\"prompt\": \"Once\", \"y_w\": \"Twice upon\", \"y_l\": \"Once upon a time\", \"y_w_score\": -1, \"y_l_score\": -5, \"score_diff\": 4, \"y_ref\": null}",
        "line 2, column y_w: does not start with the row's prompt")]
    public async Task A_bad_pair_exits_2_naming_file_line_and_column(string line, string problem)
    {
        var file = Dataset(line);
        var output = Path.Combine(_folder, "rm");
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(code == 2, error);
        Assert.Contains($"{file}, {problem}", error);
        Assert.DoesNotContain("   at ", error);   // a message, not a stack trace
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task A_non_empty_output_is_never_touched()
    {
        var file = Dataset();
        var output = Directory.CreateDirectory(Path.Combine(_folder, "taken")).FullName;
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(code == 2, error);
        Assert.Contains("not empty", error);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
    }

    [Fact]
    public async Task A_bad_number_names_its_option()
    {
        var file = Dataset();
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", Path.Combine(_folder, "rm"), "--eval-fraction", "1.5");
        Assert.True(code == 2, error);
        Assert.Contains("--eval-fraction", error);
    }
}

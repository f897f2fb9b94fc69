using PrefTune.Tests.Integration.Cli;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.FineTuning;

/// <summary>`preftune sft` refusing input as a user meets it (a separate process): each check runs before the database is
/// reached, so no server is needed, and nothing is written.</summary>
public sealed class When_the_command_line_is_given_bad_sft_input : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-sft-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static Task<(int ExitCode, string Output, string Error)> Run(params string[] args) =>
        PrefTuneProcess.RunAsync(database: "Host=127.0.0.1;Port=1;Username=nobody", schema: "unused", ["sft", .. args]);

    private string Data(params string[] lines)
    {
        var file = Path.Combine(_folder, "data.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    [Fact]
    public async Task A_bad_row_exits_2_naming_file_line_and_column_and_writes_nothing()
    {
        var file = Data(When_completion_data_is_read.Row("One day", " it rained."), "{\"prompt\": \"Once\", \"completion\": 7}");
        var output = Path.Combine(_folder, "sft");
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(code == 2, error);
        Assert.Contains($"{file}, line 2, column completion: expected a string", error);
        Assert.DoesNotContain("   at ", error);   // a message, not a stack trace
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task A_row_beyond_the_context_exits_2_naming_it()
    {
        var file = Data(When_completion_data_is_read.Row("One day", string.Concat(Enumerable.Repeat(" the cat ran", 300))));
        var output = Path.Combine(_folder, "sft");
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(code == 2, error);
        Assert.Contains($"{file}, line 1, column completion: prompt and completion hold", error);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task A_non_empty_output_is_never_touched()
    {
        var file = Data(When_completion_data_is_read.Row("One day", " it rained."));
        var output = Directory.CreateDirectory(Path.Combine(_folder, "taken")).FullName;
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var (code, _, error) = await Run(file, "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(code == 2, error);
        Assert.Contains("not empty", error);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
    }

    [Fact]
    public async Task A_missing_file_or_a_bad_number_names_it()
    {
        var output = Path.Combine(_folder, "sft");
        var missing = await Run(Path.Combine(_folder, "none.jsonl"), "--model", Fixtures.StoriesHf, "--output", output);
        Assert.True(missing.ExitCode == 2, missing.Error);
        Assert.Contains("none.jsonl: no such file", missing.Error);
        var file = Data(When_completion_data_is_read.Row("One day", " it rained."));
        var bad = await Run(file, "--model", Fixtures.StoriesHf, "--output", output, "--eval-fraction", "1.5");
        Assert.True(bad.ExitCode == 2, bad.Error);
        Assert.Contains("--eval-fraction", bad.Error);
        Assert.False(Directory.Exists(output));
    }
}

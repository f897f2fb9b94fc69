using Parquet.Serialization;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>`preftune data FILE` as a user runs it: the detected format, the counts, token-length percentiles and the first
/// rows, for files in several formats written here (one of them Parquet by Parquet.Net); a bad row exits 2 naming it.</summary>
public sealed class When_the_command_line_reads_preference_data : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-data-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(params string[] args) =>
        PrefTuneProcess.RunWithDataFolderAsync(Path.Combine(_folder, "data"), args);

    public sealed class Message { public string role { get; set; } = ""; public string content { get; set; } = ""; }
    public sealed class UltraFeedbackRow
    {
        public string prompt { get; set; } = ""; public string prompt_id { get; set; } = "";
        public List<Message> chosen { get; set; } = []; public List<Message> rejected { get; set; } = []; public List<Message> messages { get; set; } = [];
        public double score_chosen { get; set; } public double score_rejected { get; set; }
    }

    [Fact]
    public async Task It_prints_the_format_counts_token_lengths_and_rows_of_each_format()
    {
        var alpaca = Path.Combine(_folder, "alpaca.jsonl");
        File.WriteAllLines(alpaca, Enumerable.Range(0, 5).Select(i =>
            $$"""{"instruction": "Count to {{i}}.", "input": "", "output_1": "{{string.Join(" ", Enumerable.Range(1, i))}}", "output_2": "no", "preference": 1}"""));
        var hh = Path.Combine(_folder, "hh.jsonl");
        File.WriteAllLines(hh, ["""{"chosen": "\n\nHuman: Tell me a story.\n\nAssistant: Once upon a time, a cat sat.", "rejected": "\n\nHuman: Tell me a story.\n\nAssistant: No."}"""]);
        var ultra = Path.Combine(_folder, "train_prefs.parquet");
        await ParquetSerializer.SerializeAsync(Enumerable.Range(0, 3).Select(i => new UltraFeedbackRow
        {
            prompt = $"Question {i}?", prompt_id = $"id{i}",
            chosen = [new() { role = "user", content = $"Question {i}?" }, new() { role = "assistant", content = "A good answer." }],
            rejected = [new() { role = "user", content = $"Question {i}?" }, new() { role = "assistant", content = "Bad." }],
            messages = [new() { role = "user", content = $"Question {i}?" }, new() { role = "assistant", content = "A good answer." }],
            score_chosen = 9, score_rejected = 3,
        }), ultra);

        var a = await PrefTuneAsync("data", alpaca, "--tokenizer", Fixtures.StoriesHf, "--template", "prompter", "--rows", "1");
        Assert.True(a.ExitCode == 0, a.Error);
        Assert.Contains("alpacafarm, 5 rows, conversations rendered with the prompter template", a.Output);
        Assert.Contains("lengths in tokens at percentiles 0 / 10 / 50 / 90 / 100", a.Output);
        Assert.Contains("prompt:   \"<|prompter|>Count to 0.<|endoftext|><|assistant|>\"", a.Output);
        Assert.Single(a.Output.Split('\n'), l => l.StartsWith("--- "));   // --rows 1

        var h = await PrefTuneAsync("data", hh);
        Assert.True(h.ExitCode == 0, h.Error);
        Assert.Contains("anthropic-hh, 1 rows", h.Output);
        Assert.Contains("lengths in characters", h.Output);   // no tokenizer given
        Assert.Contains("chosen:   \" Once upon a time, a cat sat.\"", h.Output);

        var u = await PrefTuneAsync("data", ultra, "--template", "chatml");
        Assert.True(u.ExitCode == 0, u.Error);
        Assert.Contains("ultrafeedback, 3 rows", u.Output);
        Assert.Contains("(score 9)", u.Output);
        Assert.Contains(ultra + ", row 0", u.Output);
    }

    [Fact]
    public async Task Convert_writes_the_rows_in_another_format_and_never_overwrites()
    {
        var shipped = Path.Combine(Unit.Experiments.ExperimentText.RepositoryRoot(), "experiments", "data", "stories-alpacafarm.jsonl");
        var output = Path.Combine(_folder, "hh.jsonl");

        var convert = await PrefTuneAsync("data", shipped, "--convert", "anthropic-hh", "--limit", "5", "--output", output, "--rows", "0");
        Assert.True(convert.ExitCode == 0, convert.Error);
        Assert.Contains($"wrote 5 rows as anthropic-hh to {output}", convert.Output);
        var back = await PrefTuneAsync("data", output, "--rows", "0");
        Assert.Contains("anthropic-hh, 5 rows", back.Output);

        var again = await PrefTuneAsync("data", shipped, "--convert", "anthropic-hh", "--output", output);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("exists; nothing is ever overwritten", again.Error);
        Assert.Contains("anthropic-hh, 5 rows", (await PrefTuneAsync("data", output, "--rows", "0")).Output);
    }

    [Fact]
    public async Task A_bad_row_or_template_exits_2_naming_it_without_a_stack_trace()
    {
        var bad = Path.Combine(_folder, "bad.jsonl");
        File.WriteAllLines(bad, ["""{"prompt": "a", "chosen": "b", "rejected": "c"}""", """{"prompt": "a", "chosen": "b", "rejected": null}"""]);

        var row = await PrefTuneAsync("data", bad);
        Assert.Equal(2, row.ExitCode);
        Assert.Contains($"{bad}, line 2, column rejected: null", row.Error);
        Assert.DoesNotContain("   at ", row.Error);

        var template = await PrefTuneAsync("data", bad, "--template", "vicuna");
        Assert.Equal(2, template.ExitCode);
        Assert.Contains("--template: template 'vicuna' is not one PrefTune renders", template.Error);
    }
}

using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.FineTuning;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.FineTuning;

/// <summary>SFT data on disk (TRL's prompt-completion form) and its tokens: a bad row is named by file, line or row, and column.</summary>
public sealed class When_completion_data_is_read : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-sft-data-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Jsonl(params string[] lines)
    {
        var file = Path.Combine(_folder, "data.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    public static string Row(string prompt, string completion, string column = "completion") =>
        new JsonObject { ["prompt"] = prompt, [column] = completion }.ToJsonString();

    [Fact]
    public async Task Should_read_completion_or_its_alias_response_and_skip_blank_lines()
    {
        var file = Jsonl(Row("Once upon a time", " there was a cat."), "", Row("One day", " it rained.", "response"));
        var rows = await CompletionDataFiles.ReadAsync(file);
        Assert.Equal([("Once upon a time", " there was a cat.", "completion"), ("One day", " it rained.", "response")],
            rows.Select(r => (r.Prompt, r.Completion, r.CompletionColumn)));
        Assert.Equal($"{file}, line 3", rows[1].Where);
    }

    [Theory]
    [InlineData("{\"prompt\": \"a\"}", "line 2, column completion: missing")]
    [InlineData("{\"prompt\": \"a\", \"completion\": 3}", "line 2, column completion: expected a string")]
    [InlineData("{\"prompt\": null, \"completion\": \"b\"}", "line 2, column prompt: null")]
    [InlineData("{\"prompt\": \"a\", \"completion\": \"b\", \"response\": \"c\"}", "line 2, column response: both completion and response")]
    [InlineData("[1, 2]", "line 2: expected a JSON object")]
    [InlineData("{\"prompt\": ", "line 2: not valid JSON")]
    public async Task Should_name_the_file_line_and_column_of_a_bad_row(string bad, string expected)
    {
        var file = Jsonl(Row("a", "b"), bad);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => CompletionDataFiles.ReadAsync(file));
        Assert.StartsWith($"{file}, {expected}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_refuse_a_missing_or_empty_file()
    {
        var missing = Path.Combine(_folder, "none.jsonl");
        Assert.Contains("no such file", (await Assert.ThrowsAsync<ArgumentException>(() => CompletionDataFiles.ReadAsync(missing))).Message);
        var empty = Jsonl("", " ");
        Assert.Contains("holds no rows", (await Assert.ThrowsAsync<ArgumentException>(() => CompletionDataFiles.ReadAsync(empty))).Message);
    }

    [Fact]
    public async Task Should_read_parquet_and_name_the_row_of_a_null()
    {
        var file = Path.Combine(_folder, "data.parquet");
        var (prompt, response) = (new DataField<string>("prompt"), new DataField<string>("response"));
        async Task Write(string?[] responses)
        {
            File.Delete(file);
            await using var stream = File.Create(file);
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(prompt, response), stream);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(prompt, new[] { "a", "b" });
            await group.WriteAsync(response, responses);
        }
        await Write([" x", " y"]);
        Assert.Equal([("a", " x"), ("b", " y")], (await CompletionDataFiles.ReadAsync(file)).Select(r => (r.Prompt, r.Completion)));
        await Write([" x", null]);
        var error = await Assert.ThrowsAsync<ArgumentException>(() => CompletionDataFiles.ReadAsync(file));
        Assert.StartsWith($"{file}, row 1, column response: null", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_end_each_completion_with_the_stop_token_and_refuse_a_row_beyond_the_context()
    {
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesHf);
        var config = Checkpoints.ReadConfig(Fixtures.StoriesHf);
        var file = Jsonl(Row("Once upon a time", " there was a cat."), Row("One day", string.Concat(Enumerable.Repeat(" the cat ran", 300))));
        var rows = await CompletionDataFiles.ReadAsync(file);
        var first = SupervisedFineTuning.Tokenize(rows.Take(1).ToList(), tokenizer, config, stopId: 2).Single();
        Assert.Equal(tokenizer.Encode("Once upon a time"), first.Prompt);
        Assert.Equal([.. tokenizer.Encode("Once upon a time there was a cat.").Skip(first.Prompt.Length), 2], first.Completion);

        var error = Assert.Throws<ArgumentException>(() => SupervisedFineTuning.Tokenize(rows, tokenizer, config, stopId: 2));
        Assert.StartsWith($"{file}, line 2, column completion: prompt and completion hold", error.Message, StringComparison.Ordinal);
        Assert.Contains("context of 512", error.Message);
    }
}

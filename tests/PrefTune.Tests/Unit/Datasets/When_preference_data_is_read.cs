using Parquet.Serialization;
using PrefTune.Training.Datasets;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.Datasets;

/// <summary>
/// Each format users bring is detected from its columns and mapped to prompt, chosen and rejected, from JSONL and from
/// Parquet written by Parquet.Net (nested messages included); a file that does not fit names the file, line or row and
/// the column.
/// </summary>
public sealed class When_preference_data_is_read : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-formats-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Jsonl(params string[] lines)
    {
        var file = Path.Combine(_folder, $"data-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    private async Task<string> Parquet<T>(IEnumerable<T> rows)
    {
        var file = Path.Combine(_folder, $"data-{Guid.NewGuid():N}.parquet");
        await ParquetSerializer.SerializeAsync(rows, file);
        return file;
    }

    public sealed class Message { public string role { get; set; } = ""; public string content { get; set; } = ""; }
    public sealed class ConversationalRow { public List<Message> prompt { get; set; } = []; public List<Message> chosen { get; set; } = []; public List<Message> rejected { get; set; } = []; }
    public sealed class AlpacaRow { public string instruction { get; set; } = ""; public string input { get; set; } = ""; public string output_1 { get; set; } = ""; public string output_2 { get; set; } = ""; public long preference { get; set; } }
    public sealed class UltraFeedbackRow
    {
        public string prompt { get; set; } = ""; public string prompt_id { get; set; } = "";
        public List<Message> chosen { get; set; } = []; public List<Message> rejected { get; set; } = []; public List<Message> messages { get; set; } = [];
        public double score_chosen { get; set; } public double score_rejected { get; set; }
    }

    private static Message M(string role, string content) => new() { role = role, content = content };

    [Fact]
    public async Task Trl_standard_rows_are_text_as_written()
    {
        var (format, rows) = await PreferenceFormats.ReadAsync(Jsonl(
            """{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}""",
            "",
            """{"prompt": "Water is", "chosen": " wet.", "rejected": " dry."}"""));

        Assert.Equal(PreferenceFormat.TrlStandard, format);
        Assert.Equal(2, rows.Count);
        Assert.Equal(("The sky is", " blue.", " green."), (rows[0].Prompt(PromptTemplate.ChatMl), rows[0].Chosen, rows[0].Rejected));
        Assert.EndsWith("line 3", rows[1].Where);
    }

    [Fact]
    public async Task Trl_conversational_rows_from_parquet_render_their_prompt_through_the_template()
    {
        var file = await Parquet([new ConversationalRow
        {
            prompt = [M("user", "What colour is the sky?")],
            chosen = [M("assistant", "Blue.")],
            rejected = [M("assistant", "Green.")],
        }]);

        var (format, rows) = await PreferenceFormats.ReadAsync(file);

        Assert.Equal(PreferenceFormat.TrlConversational, format);
        var row = Assert.Single(rows);
        Assert.Equal("<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n", row.Prompt(PromptTemplate.ChatMl));
        Assert.Equal(("Blue.", "Green."), (row.Chosen, row.Rejected));
        Assert.Equal($"{file}, row 0", row.Where);
    }

    [Fact]
    public async Task AlpacaFarm_rows_put_the_preferred_output_first_in_the_papers_format()
    {
        var file = await Parquet([
            new AlpacaRow { instruction = "Sort these numbers.", input = "3, 1, 2", output_1 = "1, 2, 3", output_2 = "3, 2, 1", preference = 1 },
            new AlpacaRow { instruction = "Name a colour.", input = "", output_1 = "Seven", output_2 = "Red", preference = 2 },
        ]);

        var (format, rows) = await PreferenceFormats.ReadAsync(file);

        Assert.Equal(PreferenceFormat.AlpacaFarm, format);
        Assert.Equal("<|prompter|>Sort these numbers.\n3, 1, 2<|endoftext|><|assistant|>", rows[0].Prompt(PromptTemplate.Paper));
        Assert.Equal(("1, 2, 3", "3, 2, 1"), (rows[0].Chosen, rows[0].Rejected));
        Assert.Equal("<|prompter|>Name a colour.<|endoftext|><|assistant|>", rows[1].Prompt(PromptTemplate.Paper));
        Assert.Equal(("Red", "Seven"), (rows[1].Chosen, rows[1].Rejected));
    }

    [Fact]
    public async Task UltraFeedback_rows_take_the_shared_turns_as_prompt_and_keep_the_scores()
    {
        var file = await Parquet([new UltraFeedbackRow
        {
            prompt = "Hi?", prompt_id = "abc",
            chosen = [M("user", "Hi?"), M("assistant", "Hello!")],
            rejected = [M("user", "Hi?"), M("assistant", "Go away.")],
            messages = [M("user", "Hi?"), M("assistant", "Hello!")],
            score_chosen = 8.5, score_rejected = 2,
        }]);

        var (format, rows) = await PreferenceFormats.ReadAsync(file);

        Assert.Equal(PreferenceFormat.UltraFeedback, format);
        var row = Assert.Single(rows);
        Assert.Equal([new ChatMessage("user", "Hi?")], row.PromptMessages!);
        Assert.Equal(("Hello!", "Go away.", 8.5, 2.0), (row.Chosen, row.Rejected, row.ChosenScore, row.RejectedScore));
    }

    [Fact]
    public async Task Anthropic_hh_dialogues_are_split_at_their_last_shared_assistant_turn()
    {
        var (format, rows) = await PreferenceFormats.ReadAsync(Jsonl(
            """{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?", "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant: No."}"""));

        Assert.Equal(PreferenceFormat.AnthropicHh, format);
        var row = Assert.Single(rows);
        Assert.Equal("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant:", row.PromptText);
        // the prompt is what the hh template renders for the same turns
        Assert.Equal(PromptTemplate.Hh.Render([new("user", "Hi"), new("assistant", "Hello"), new("user", "Tell me a joke")]), row.PromptText);
        Assert.Equal((" Why did the chicken cross the road?", " No."), (row.Chosen, row.Rejected));
    }

    [Fact]
    public async Task Relabeled_rows_strip_the_prompt_from_y_w_and_y_l_or_split_on_the_assistant_marker()
    {
        var (format, rows) = await PreferenceFormats.ReadAsync(Jsonl(
            """{"prompt": "<|prompter|>Hi<|endoftext|><|assistant|>", "y_w": "<|prompter|>Hi<|endoftext|><|assistant|>Hello", "y_l": "<|prompter|>Hi<|endoftext|><|assistant|>Hello there, friend", "y_w_score": -5, "y_l_score": -20, "score_diff": 15, "y_ref": null}""",
            """{"prompt": "Hi", "y_w": "<|prompter|>Hi <|endoftext|><|assistant|>Yo", "y_l": "<|prompter|>Hi <|endoftext|><|assistant|>Good day", "y_w_score": -2, "y_l_score": -8, "score_diff": 6, "y_ref": "Hi"}"""));

        Assert.Equal(PreferenceFormat.Relabeled, format);
        Assert.Equal(("Hello", "Hello there, friend", -5.0, -20.0), (rows[0].Chosen, rows[0].Rejected, rows[0].ChosenScore, rows[0].RejectedScore));
        Assert.Equal(("Yo", "Good day"), (rows[1].Chosen, rows[1].Rejected));
    }

    [Fact]
    public async Task Prompt_only_files_give_prompts_without_responses()
    {
        var (format, rows) = await PreferenceFormats.ReadAsync(Jsonl(
            """{"prompt": "Once upon a time"}""",
            """{"prompt": [{"role": "user", "content": "Tell me a story."}]}"""));

        Assert.Equal(PreferenceFormat.PromptOnly, format);
        Assert.Equal("Once upon a time", rows[0].Prompt(PromptTemplate.Llama3));
        Assert.Null(rows[0].Chosen);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            rows[1].Prompt(PromptTemplate.Llama3));
    }

    public static TheoryData<string, string> Malformed => new()
    {
        // a later row without a column the first row had
        { """{"prompt": "a", "chosen": "b", "rejected": "c"}""" + "\n" + """{"prompt": "a", "chosen": "b"}""", "line 2, column rejected: missing" },
        { """{"prompt": "a", "chosen": 3, "rejected": "c"}""", "line 1, column chosen: expected text" },
        { """{"instruction": "a", "input": "", "output_1": "x", "output_2": "y", "preference": 3}""", "line 1, column preference: 3 is neither 1 nor 2" },
        { """{"chosen": "\n\nHuman: a", "rejected": "\n\nHuman: a"}""", "line 1, column chosen: no" },
        { """{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: z\n\nAssistant: b"}""", "line 1, column rejected: does not share" },
        { """{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "user", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}""",
            "line 1, column chosen: its last message is 'user'" },
        { """{"prompt": [{"role": "user"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}""",
            "line 1, column prompt, message 0: expected {role, content}" },
        { """{"prompt": "p", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "c"}], "score_chosen": 1, "score_rejected": 0}""",
            "line 1, column rejected: its turns before the last differ" },
        { """{"prompt": "p", "y_w": "x", "y_l": "p y", "y_w_score": 1, "y_l_score": 0, "score_diff": 1, "y_ref": null}""", "line 1, column y_w: neither starts with the prompt" },
        { """{"question": "a", "answer": "b"}""", "columns question, answer fit no known format" },
        { """{"prompt": "a", "chosen": "b", "rejected": "c"} trailing""", "line 1: not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task A_row_that_does_not_fit_names_the_file_the_line_and_the_column(string lines, string expected)
    {
        var file = Jsonl(lines.Split('\n'));
        var error = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceFormats.ReadAsync(file));
        Assert.Contains(file, error.Message);
        Assert.Contains(expected, error.Message);
    }

    public static TheoryData<string> Formats => new(Enum.GetValues<PreferenceFormat>().Select(PreferenceFormats.NameOf));

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task What_is_written_in_a_format_reads_back_as_the_same_examples(string name)
    {
        var format = PreferenceFormats.Named(name);
        PreferenceExample[] source =
        [
            new("memory", "Once upon a time, a cat", null, " sat.", " sat on a very long mat.", -4, -9),
            new("memory", "Tom had a ball.", null, " He threw it.", " It was red and he liked it.", -3, -8),
        ];
        var file = Path.Combine(_folder, $"{name}.jsonl");

        PreferenceFormats.WriteJsonl(file, format, source, PromptTemplate.Plain);
        var (detected, back) = await PreferenceFormats.ReadAsync(file);

        Assert.Equal(format, detected);
        Assert.Equal(source.Length, back.Count);
        for (var i = 0; i < source.Length; i++)
        {
            Assert.Equal(source[i].Prompt(PromptTemplate.Plain), format == PreferenceFormat.AnthropicHh
                ? back[i].PromptText![("\n\nHuman: ".Length)..^("\n\nAssistant:".Length)]   // HH wraps the prompt in its turns
                : back[i].Prompt(PromptTemplate.Plain));
            if (format == PreferenceFormat.PromptOnly) { Assert.Null(back[i].Chosen); continue; }
            var space = format == PreferenceFormat.AnthropicHh ? " " : "";   // HH's text has a space after "Assistant:"
            Assert.Equal((space + source[i].Chosen, space + source[i].Rejected), (back[i].Chosen, back[i].Rejected));
        }
        Assert.Throws<IOException>(() => PreferenceFormats.WriteJsonl(file, format, source, PromptTemplate.Plain));   // never overwritten
    }

    [Fact]
    public async Task An_empty_file_or_another_extension_is_refused_naming_it()
    {
        var empty = Jsonl("");
        Assert.Contains("holds no rows", (await Assert.ThrowsAsync<ArgumentException>(() => PreferenceFormats.ReadAsync(empty))).Message);
        var csv = Path.Combine(_folder, "data.csv");
        File.WriteAllText(csv, "prompt,chosen,rejected\n");
        Assert.Contains("unknown extension '.csv'", (await Assert.ThrowsAsync<ArgumentException>(() => PreferenceFormats.ReadAsync(csv))).Message);
        var notParquet = Path.Combine(_folder, "data.parquet");
        File.WriteAllText(notParquet, "not parquet");
        Assert.Contains(notParquet, (await Assert.ThrowsAsync<ArgumentException>(() => PreferenceFormats.ReadAsync(notParquet))).Message);
    }
}

/// <summary>The data files shipped in experiments/data (infra/dev/make-format-samples.sh) read as the format their name says.</summary>
public sealed class When_the_shipped_data_files_are_read
{
    public static TheoryData<string> Formats => new(Enum.GetValues<PreferenceFormat>().Select(PreferenceFormats.NameOf));

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task Each_is_detected_as_its_format_with_twelve_rows(string name)
    {
        var file = Path.Combine(Experiments.ExperimentText.RepositoryRoot(), "experiments", "data", $"stories-{name}.jsonl");
        var (format, rows) = await PreferenceFormats.ReadAsync(file);
        Assert.Equal(name, PreferenceFormats.NameOf(format));
        Assert.Equal(12, rows.Count);
        Assert.All(rows, r => Assert.StartsWith("Once upon a time", r.Prompt(PromptTemplate.Plain).TrimStart('\n').Replace("Human: ", "")));
    }
}

using System.Text.Json.Nodes;
using PrefTune.Tests.Integration.Cli;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>`preftune generate` as a user runs it (a separate process; it needs no database or broker).</summary>
public class When_the_command_line_generates
{
    private static Task<(int ExitCode, string Output, string Error)> Run(params string[] args) =>
        PrefTuneProcess.RunAsync(database: "unused", schema: "unused", ["generate", .. args]);

    [Fact]
    public async Task Greedy_json_from_the_llama2c_checkpoint_is_run_c_s_story()
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        var (code, output, error) = await Run(Fixtures.StoriesBin, "--tokenizer", Fixtures.StoriesTokenizerBin,
            "--prompt", "Once upon a time", "--temperature", "0", "--max-new-tokens", "60", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(Fixtures.Ints(expected["prompt_ids"]), Fixtures.Ints(json["prompt_ids"]));
        var sample = json["samples"]!.AsArray().Single()!;
        Assert.Equal(Fixtures.Ints(expected["greedy_ids"]), Fixtures.Ints(sample["ids"]));
        Assert.Equal("length", sample["finish_reason"]!.GetValue<string>());
        Assert.Equal(expected["text"]!.GetValue<string>(), "Once upon a time" + sample["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task Samples_are_batched_and_end_on_the_model_s_stop_id()
    {
        // The HF directory's stop id is its eos (2), which stories260K never emits; --stop-ids 1 is run.c's rule.
        var (code, output, error) = await Run(Fixtures.StoriesHf, "--prompt", "Once upon a time", "--samples", "40", "--batch", "40",
            "--max-new-tokens", "256", "--stop-ids", "1", "--seed", "5", "--json");
        Assert.True(code == 0, error);
        var samples = JsonNode.Parse(output)!["samples"]!.AsArray();
        Assert.Equal(40, samples.Count);
        Assert.All(samples, s => Assert.DoesNotContain(1, Fixtures.Ints(s!["ids"])));
        Assert.All(samples.Where(s => s!["finish_reason"]!.GetValue<string>() == "length"), s => Assert.Equal(256, Fixtures.Ints(s!["ids"]).Length));
    }

    [Fact]
    public async Task A_bad_model_exits_2_naming_the_file()
    {
        var (code, _, error) = await Run(Path.Combine(Fixtures.Models, "no-such-model"), "--prompt-ids", "1");
        Assert.Equal(2, code);
        Assert.Contains("no-such-model", error);
    }
}

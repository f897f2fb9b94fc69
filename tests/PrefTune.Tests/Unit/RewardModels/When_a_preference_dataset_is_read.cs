using System.Text.Json.Nodes;
using PrefTune.Training.Rewards;
using Xunit;

namespace PrefTune.Tests.Unit.RewardModels;

public sealed class When_a_preference_dataset_is_read : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-pairs-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static JsonObject Row(string prompt, string chosen, string rejected, double chosenScore = -1, double rejectedScore = -5) => new()
    {
        ["prompt"] = prompt, ["y_w"] = prompt + chosen, ["y_l"] = prompt + rejected,
        ["y_w_score"] = chosenScore, ["y_l_score"] = rejectedScore, ["score_diff"] = chosenScore - rejectedScore, ["y_ref"] = prompt + chosen,
    };

    private string Write(params string[] lines)
    {
        var file = Path.Combine(_folder, "pairs.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    [Fact]
    public void Every_column_is_read()
    {
        var file = Write(Row("Once", " upon", " upon a time").ToJsonString(), "", Row("Tom", " ran", " ran far").ToJsonString());
        var pairs = PreferencePairsFile.Read(file);
        Assert.Equal(2, pairs.Count);
        Assert.Equal(new PreferencePair(1, "Once", "Once upon", "Once upon a time", -1, -5, 4, "Once upon"), pairs[0]);
        Assert.Equal(3, pairs[1].Line);   // the blank line is skipped but counted
    }

    [Fact]
    public void A_missing_column_names_file_line_and_column()
    {
        var bad = Row("Tom", " ran", " ran far");
        bad.Remove("y_l");
        var file = Write(Row("Once", " upon", " upon a time").ToJsonString(), bad.ToJsonString());
        var e = Assert.Throws<PreferenceDataException>(() => PreferencePairsFile.Read(file));
        Assert.Equal((file, 2, "y_l"), (e.File, e.Line, e.Column));
        Assert.Contains($"{file}:2: column 'y_l': missing", e.Message);
    }

    [Fact]
    public void A_line_that_is_not_json_names_its_line()
    {
        var file = Write(Row("Once", " upon", " upon a time").ToJsonString(), "{not json");
        var e = Assert.Throws<PreferenceDataException>(() => PreferencePairsFile.Read(file));
        Assert.Equal(2, e.Line);
        Assert.Null(e.Column);
    }

    [Fact]
    public void A_score_that_is_not_a_number_names_its_column()
    {
        var bad = Row("Once", " upon", " upon a time");
        bad["score_diff"] = "four";
        var e = Assert.Throws<PreferenceDataException>(() => PreferencePairsFile.Read(Write(bad.ToJsonString())));
        Assert.Equal((1, "score_diff"), (e.Line, e.Column));
    }

    [Fact]
    public void A_text_that_does_not_continue_the_prompt_is_refused()
    {
        var bad = Row("Once", " upon", " upon a time");
        bad["y_w"] = "Twice upon";
        var e = Assert.Throws<PreferenceDataException>(() => PreferencePairsFile.Read(Write(bad.ToJsonString())));
        Assert.Equal("y_w", e.Column);
    }
}

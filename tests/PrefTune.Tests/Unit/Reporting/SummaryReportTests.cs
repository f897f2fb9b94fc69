using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Orchestrator.Reporting;
using Spectre.Console;
using Xunit;
using static PrefTune.Tests.Unit.Reporting.SyntheticRuns;

namespace PrefTune.Tests.Unit.Reporting;

public class Summarizing_an_experiment
{
    private static readonly IReadOnlyList<Orchestrator.Runs.RunOutcome> Outcomes =
    [
        Run("dpo (online)", 1, "dpo", DataSource.Online, 0.1, 0.8),
        Run("pref-ft (offline)", 1, "pref-ft", DataSource.Offline, 0.1, 0.2),
        Run("dpo (online)", 2, "dpo", DataSource.Online, 0.1, 0.6),
    ];

    private static JsonObject Json() => JsonNode.Parse(new SummaryReport("synthetic", Outcomes).ToJson())!.AsObject();

    [Fact]
    public void Groups_runs_by_label_in_the_order_they_appear()
    {
        var methods = Json()["methods"]!.AsArray();

        Assert.Equal("synthetic", (string?)Json()["experiment"]);
        Assert.Equal(["dpo (online)", "pref-ft (offline)"], methods.Select(m => (string?)m!["label"]));
        Assert.Equal(["dpo", "pref-ft"], methods.Select(m => (string?)m!["method"]));
        Assert.Equal(["online", "offline"], methods.Select(m => (string?)m!["data"]));
    }

    [Fact]
    public void Averages_the_final_gold_reward_over_seeds_with_its_range()
    {
        var dpo = Json()["methods"]![0]!;

        Assert.Equal(0.7, (double)dpo["final_gold_reward"]!, 12);
        Assert.Equal(0.6, (double?)dpo["final_gold_reward_min"]);
        Assert.Equal(0.8, (double?)dpo["final_gold_reward_max"]);
        Assert.Equal([1, 2], dpo["seeds"]!.AsArray().Select(s => (int)s!));
        Assert.Equal([Outcomes[0].RunId.ToString(), Outcomes[2].RunId.ToString()], dpo["run_ids"]!.AsArray().Select(s => (string?)s));
    }

    [Fact]
    public void Leaves_out_the_range_for_a_single_seed()
    {
        var prefFt = Json()["methods"]![1]!.AsObject();

        Assert.Equal(0.2, (double?)prefFt["final_gold_reward"]);
        Assert.False(prefFt.ContainsKey("final_gold_reward_min"));
        Assert.False(prefFt.ContainsKey("final_gold_reward_max"));
    }

    [Fact]
    public void Reports_what_the_runs_cost()
    {
        var dpo = Json()["methods"]![0]!;

        Assert.Equal(10, (int?)dpo["gradient_steps"]);
        Assert.Equal(100, (int?)dpo["samples_drawn"]);
        Assert.Equal(0, (int?)dpo["runs_failed"]);
    }

    [Fact]
    public void Names_the_report_folder_when_asked()
    {
        var json = JsonNode.Parse(new SummaryReport(Experiment(Outcomes), Outcomes).ToJson("out/x"))!.AsObject();

        Assert.Equal(["experiment", "report_folder", "methods"], json.Select(p => p.Key));
        Assert.Equal("out/x", (string?)json["report_folder"]);
        Assert.False(Json().ContainsKey("report_folder"));
    }

    [Fact]
    public void Renders_a_table_with_a_row_per_label()
    {
        var table = new SummaryReport("synthetic", Outcomes).Render();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(new StringWriter()), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 200;
        console.Write(table);
        var text = console.Profile.Out.Writer.ToString()!;

        Assert.Equal(2, table.Rows.Count);
        Assert.Contains("pref-ft (offline)", text);
        Assert.Contains("0.700 (0.600 to 0.800)", text);
    }
}

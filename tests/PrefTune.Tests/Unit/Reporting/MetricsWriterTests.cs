using System.Text.Json.Nodes;
using PrefTune.Orchestrator.Reporting;
using Xunit;
using static PrefTune.Tests.Unit.Reporting.SyntheticRuns;

namespace PrefTune.Tests.Unit.Reporting;

public class Writing_metrics_as_json_lines
{
    private static readonly IReadOnlyList<Orchestrator.Runs.RunOutcome> Outcomes =
        [Run("dpo (online)", 1, 0.1, 0.5, 0.9), Run("best-of-n (offline)", 1, 0.1, 0.2, 0.3)];

    private static List<JsonObject> Lines() =>
        MetricsWriter.JsonLines(Outcomes).Select(line => JsonNode.Parse(line)!.AsObject()).ToList();

    [Fact]
    public void Writes_one_line_per_evaluation_and_per_gradient_step()
    {
        var lines = Lines();

        Assert.Equal(2 * (3 + 20), lines.Count);
        Assert.Equal(6, lines.Count(l => (string?)l["kind"] == "eval"));
        Assert.Equal(40, lines.Count(l => (string?)l["kind"] == "train"));
    }

    [Fact]
    public void Names_eval_metrics_the_ecosystem_way()
    {
        var last = Lines().Last(l => (string?)l["kind"] == "eval" && (string?)l["label"] == "dpo (online)");

        Assert.Equal(Outcomes[0].RunId.ToString(), (string?)last["run_id"]);
        Assert.Equal(1, (int?)last["seed"]);
        Assert.Equal(20, (int?)last["step"]);
        Assert.Equal(0.9, (double?)last["eval/gold_reward_mean"]);
        Assert.Equal(0.45, (double?)last["eval/gold_reward_std"]);
        Assert.Equal(3.1, (double?)last["eval/entropy"]);
    }

    [Fact]
    public void Passes_train_metrics_through_under_their_own_names()
    {
        var step4 = Lines().Single(l => (string?)l["kind"] == "train" && (int?)l["step"] == 4 && (string?)l["label"] == "dpo (online)");

        Assert.Equal(0.25, (double?)step4["train/loss"]);
        Assert.Equal(0.4, (double)step4["train/rewards/margins"]!, 12);
    }

    [Fact]
    public void Orders_each_run_by_step_with_the_evaluation_after_its_step()
    {
        var run = Lines().Where(l => (string?)l["label"] == "dpo (online)").Select(l => ((int)l["step"]!, (string)l["kind"]!)).ToList();

        Assert.Equal((0, "eval"), run[0]);
        Assert.Equal((10, "train"), run[10]);
        Assert.Equal((10, "eval"), run[11]);
        Assert.Equal(run.OrderBy(r => r.Item1).Select(r => r.Item1), run.Select(r => r.Item1));
    }

    [Fact]
    public void Writes_a_diverged_loss_as_null()
    {
        var run = Run("dpo (online)", 1, 0.1, 0.2);
        var diverged = run with { Updates = [run.Updates[0] with { Loss = double.NaN }] };

        var train = MetricsWriter.JsonLines([diverged]).Select(l => JsonNode.Parse(l)!.AsObject()).Single(l => (string?)l["kind"] == "train");

        Assert.True(train.ContainsKey("train/loss"));
        Assert.Null(train["train/loss"]);
    }
}

public class Writing_metrics_as_csv
{
    [Fact]
    public void Writes_one_row_per_evaluation_under_the_header()
    {
        var outcomes = new[] { Run("dpo, beta 0.1", 3, 0.25, 0.5) };

        var lines = MetricsWriter.CsvLines(outcomes).ToList();

        Assert.Equal("label,seed,step,gold_reward_mean,gold_reward_std,entropy", lines[0]);
        Assert.Equal(["\"dpo, beta 0.1\",3,0,0.25,0.125,3.75", "\"dpo, beta 0.1\",3,10,0.5,0.25,3.5"], lines[1..]);
    }

    [Fact]
    public void Writes_both_files_to_disk()
    {
        var folder = TempFolder();
        Directory.CreateDirectory(folder);
        try
        {
            var outcomes = new[] { Run("dpo (online)", 1, 0.1, 0.2) };
            MetricsWriter.WriteJsonl(Path.Combine(folder, "m.jsonl"), outcomes);
            MetricsWriter.WriteCsv(Path.Combine(folder, "m.csv"), outcomes);

            Assert.Equal(12, File.ReadAllLines(Path.Combine(folder, "m.jsonl")).Length);
            Assert.Equal(3, File.ReadAllLines(Path.Combine(folder, "m.csv")).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

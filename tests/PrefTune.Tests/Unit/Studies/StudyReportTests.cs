using System.Globalization;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;
using Xunit;
using static PrefTune.Tests.Unit.Reporting.SyntheticRuns;

namespace PrefTune.Tests.Unit.Studies;

/// <summary>Synthetic study cells: runs from <see cref="Reporting.SyntheticRuns"/> placed in a grid.</summary>
internal static class SyntheticStudy
{
    public static StudyCellRun Cell(string reward, RunOutcome run) =>
        new(new StudyCell { Reward = reward, Label = run.Spec.Label, Seed = run.Spec.Seed }, run);

    public static StudyCellRun Swept(string reward, string sweep, double value, RunOutcome run) =>
        new(new StudyCell { Reward = reward, Label = sweep, SweepField = "B", SweepValue = value, Seed = run.Spec.Seed }, run);

    /// <summary>A pair method's training metrics at step s: rewards chosen s, rejected -s, margins 2s, logps chosen -0.1 s.</summary>
    public static RunOutcome WithPairs(RunOutcome run) => run with
    {
        Updates = run.Updates.Select(u => u with
        {
            Metrics = new Dictionary<string, double>
            {
                ["train/rewards/chosen"] = u.Step,
                ["train/rewards/rejected"] = -u.Step,
                ["train/rewards/margins"] = 2 * u.Step,
                ["train/logps/chosen"] = -0.1 * u.Step,
            },
        }).ToList(),
    };

    /// <summary>No train/ metrics at all (a method without pairs).</summary>
    public static RunOutcome WithoutTrainingMetrics(RunOutcome run) => run with
    {
        Updates = run.Updates.Select(u => u with { Metrics = new Dictionary<string, double>() }).ToList(),
    };

    /// <summary>The last evaluation also reports KL(pi || pi_ref) = <paramref name="kl"/>.</summary>
    public static RunOutcome WithKl(RunOutcome run, double kl) => run with
    {
        Evaluations = [.. run.Evaluations.SkipLast(1), run.Evaluations[^1] with { Metrics = new Dictionary<string, double> { ["eval/objective/kl"] = kl } }],
    };
}

public sealed class Summarizing_a_study
{
    private static readonly RunOutcome Dpo1 = SyntheticStudy.WithKl(SyntheticStudy.WithPairs(Run("dpo (online)", 1, 0.04, 0.5, 0.9)), 1.0);
    private static readonly RunOutcome Dpo2 = SyntheticStudy.WithKl(SyntheticStudy.WithPairs(Run("dpo (online)", 2, 0.04, 0.6, 0.95)), 2.0);
    private static readonly RunOutcome Bon = SyntheticStudy.WithoutTrainingMetrics(Run("best-of-n (offline)", 1, "best-of-n", DataSource.Offline, 0.04, 0.1, 0.2));
    private static readonly RunOutcome Rwr20 = Run("rwr online B=20", 1, "rwr", DataSource.Online, 0.04, 0.3, 0.7);

    private static StudySummary Summary() => new("synthetic-study", Guid.Parse("11111111-2222-3333-4444-555555555555"),
    [
        SyntheticStudy.Cell("peak70", Dpo1), SyntheticStudy.Cell("peak70", Dpo2), SyntheticStudy.Cell("peak70", Bon),
        SyntheticStudy.Swept("peak70", "rwr-B", 10, Bon), SyntheticStudy.Swept("peak70", "rwr-B", 20, Rwr20),
    ]);

    [Fact]
    public void Has_one_cell_per_reward_and_method_or_sweep_value_in_study_order()
    {
        Assert.Equal(["dpo (online)", "best-of-n (offline)", "rwr-B B=10", "rwr-B B=20"], Summary().Cells.Select(c => c.Name));
    }

    [Fact]
    public void Averages_the_final_gold_reward_over_seeds_with_the_sample_deviation()
    {
        var dpo = Summary().Cells[0];

        Assert.Equal([1, 2], dpo.Seeds);
        Assert.Equal([Dpo1.RunId, Dpo2.RunId], dpo.RunIds);
        Assert.Equal(0.925, dpo.FinalGoldRewardMean!.Value, 12);
        Assert.Equal(Math.Sqrt(2 * 0.025 * 0.025), dpo.FinalGoldRewardStd!.Value, 12);
        Assert.Null(Summary().Cells[1].FinalGoldRewardStd);
    }

    [Fact]
    public void Reads_kl_and_entropy_from_each_runs_last_evaluation()
    {
        var dpo = Summary().Cells[0];

        Assert.Equal(1.5, dpo.EvalKl);
        Assert.Equal(((4 - 0.9) + (4 - 0.95)) / 2, dpo.EvalEntropy!.Value, 12);
        Assert.Null(Summary().Cells[1].EvalKl);
    }

    [Fact]
    public void Averages_the_implicit_rewards_over_the_last_ten_steps_and_the_chosen_log_prob_at_both_ends()
    {
        var dpo = Summary().Cells[0];   // 20 steps: the last ten are 11..20, the first ten 1..10

        Assert.Equal(15.5, dpo.RewardsChosen);
        Assert.Equal(-15.5, dpo.RewardsRejected);
        Assert.Equal(31, dpo.RewardsMargins);
        Assert.Equal(-0.55, dpo.LogpsChosenStart!.Value, 12);
        Assert.Equal(-1.55, dpo.LogpsChosenEnd!.Value, 12);
    }

    [Fact]
    public void Leaves_the_pair_columns_empty_for_a_method_without_pairs()
    {
        var summary = Summary();
        var row = summary.CsvLines().ElementAt(2).Split(',');
        var header = StudySummary.CsvHeader.Split(',');

        Assert.Equal("best-of-n (offline)", row[Array.IndexOf(header, "label")]);
        foreach (var column in new[] { "rewards_chosen", "rewards_rejected", "rewards_margins", "logps_chosen_start", "logps_chosen_end", "final_gold_reward_std", "eval_kl" })
            Assert.Equal("", row[Array.IndexOf(header, column)]);
        Assert.Null(summary.Cells[1].RewardsMargins);
    }

    [Fact]
    public void Writes_full_precision_numbers_and_every_run_id_in_the_csv()
    {
        var row = Summary().CsvLines().ElementAt(1).Split(',');
        var header = StudySummary.CsvHeader.Split(',');

        Assert.Equal(0.925, double.Parse(row[Array.IndexOf(header, "final_gold_reward_mean")], CultureInfo.InvariantCulture), 15);
        Assert.Equal("1 2", row[Array.IndexOf(header, "seeds")]);
        Assert.Equal($"{Dpo1.RunId} {Dpo2.RunId}", row[Array.IndexOf(header, "run_ids")]);
    }

    [Fact]
    public void Counts_a_run_shared_by_two_cells_once()
    {
        Assert.Equal(4, Summary().DistinctRuns.Count);
        Assert.Equal(4, JsonNode.Parse(Summary().ToJson())!["runs"]!.GetValue<int>());
    }
}

public sealed class Writing_a_study_report : IDisposable
{
    private readonly string _folder = TempFolder();

    private static StudySummary Summary()
    {
        var runs = new List<StudyCellRun>();
        foreach (var (reward, peak) in new[] { ("peak70", 0.5), ("peak20", 0.9) })
        {
            foreach (var seed in new[] { 1, 2 })
            {
                runs.Add(SyntheticStudy.Cell(reward, SyntheticStudy.WithPairs(Run("dpo (online)", seed, 0.04, peak - 0.1, peak))));
                runs.Add(SyntheticStudy.Cell(reward, Run("pref-ft (offline)", seed, "pref-ft", DataSource.Offline, 0.04, 0.1, 0.2)));
            }
            foreach (var b in new[] { 10, 20 })
                runs.Add(SyntheticStudy.Swept(reward, "rwr-B", b, Run($"rwr online B={b}", 1, "rwr", DataSource.Online, 0.04, 0.2, peak / b * 10)));
        }
        return new StudySummary("synthetic-study", Guid.NewGuid(), runs);
    }

    [Fact]
    public void Writes_a_plot_per_reward_and_per_sweep_and_reward_then_the_tables()
    {
        var files = StudyReport.Write(_folder, Summary());

        Assert.Equal(
        [
            "gold_reward_peak70.png", "gold_reward_peak20.png", "sweep_rwr-B_peak70.png", "sweep_rwr-B_peak20.png",
            "table.csv", "curves.csv", "table.md", "summary.json", "study.md",
        ], files.Select(Path.GetFileName));
        Assert.All(files, f => Assert.True(new FileInfo(f).Length > 0, f));
    }

    [Fact]
    public void Curves_csv_has_one_line_per_evaluation_of_every_cells_runs()
    {
        var summary = Summary();
        StudyReport.Write(_folder, summary);

        var lines = File.ReadAllLines(Path.Combine(_folder, StudyReport.CurvesCsv));
        var evaluations = summary.Cells.Sum(c => c.RunIds.Sum(id => summary.Runs.First(r => r.Outcome.RunId == id).Outcome.Evaluations.Count));
        Assert.Equal("reward,cell,seed,run_id,step,gold_reward,mean_length,proxy_reward,kl,entropy", lines[0]);
        Assert.Equal(evaluations, lines.Length - 1);
        var first = summary.Runs.First(r => r.Outcome.RunId == summary.Cells[0].RunIds[0]).Outcome.Evaluations[0];
        Assert.StartsWith($"{summary.Cells[0].Reward},{summary.Cells[0].Name},", lines[1]);
        Assert.Contains($",{first.Step},{first.MeanGoldReward.ToString("R", System.Globalization.CultureInfo.InvariantCulture)},", lines[1]);
    }

    [Fact]
    public void Embeds_every_plot_and_the_table_in_study_md_with_the_study_id()
    {
        var summary = Summary();
        StudyReport.Write(_folder, summary);
        var markdown = File.ReadAllText(Path.Combine(_folder, "study.md"));

        Assert.Contains(summary.StudyId.ToString(), markdown);
        foreach (var png in Directory.GetFiles(_folder, "*.png").Select(Path.GetFileName))
            Assert.Contains($"]({png})", markdown);
        Assert.Contains("| peak20 | dpo (online) | dpo | online | 2 | ", markdown);
        Assert.Contains("| peak70 | rwr-B B=20 | rwr | online | 1 | ", markdown);
        Assert.Contains("0.500 ± 0.000", markdown);
    }

    [Fact]
    public void Puts_one_csv_row_and_one_json_cell_per_cell()
    {
        var summary = Summary();
        StudyReport.Write(_folder, summary);

        var csv = File.ReadAllLines(Path.Combine(_folder, "table.csv"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_folder, "summary.json")))!;

        Assert.Equal(StudySummary.CsvHeader, csv[0]);
        Assert.Equal(1 + 8, csv.Length);
        Assert.Equal(8, json["cells"]!.AsArray().Count);
        Assert.Equal(summary.StudyId.ToString(), json["study_id"]!.GetValue<string>());
        Assert.Equal(Path.GetFullPath(_folder), json["report_folder"]!.GetValue<string>());
        Assert.Equal("B", json["cells"]![2]!["sweep_field"]!.GetValue<string>());
        Assert.Equal(summary.Cells[0].RewardsMargins, json["cells"]![0]!["rewards_margins"]!.GetValue<double>());
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }
}

public sealed class Printing_a_study_summary_in_a_pipe
{
    [Fact]
    public void Keeps_every_cell_s_name_on_one_line_within_80_columns()
    {
        var summary = new StudySummary("synthetic-study", Guid.Parse("11111111-2222-3333-4444-555555555555"),
        [
            SyntheticStudy.Cell("peak70", SyntheticStudy.WithKl(SyntheticStudy.WithPairs(Run("dpo (online)", 1, 0.04, 0.5, 0.9)), 1.0)),
            SyntheticStudy.Cell("peak70", SyntheticStudy.WithoutTrainingMetrics(Run("best-of-n (offline)", 1, "best-of-n", DataSource.Offline, 0.04, 0.1, 0.2))),
        ]);
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(new StringWriter()), Ansi = Spectre.Console.AnsiSupport.No,
            ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
        });
        console.Profile.Width = 80;   // what Spectre.Console assumes outside a terminal

        console.Write(summary.Render(console.Profile.Width));

        var lines = console.Profile.Out.Writer.ToString()!.Split('\n');
        Assert.All(lines, l => Assert.True(l.TrimEnd().Length <= 80, l));
        foreach (var cell in summary.Cells)
            Assert.Contains(lines, l => l.Contains(cell.Name, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("final gold reward 0.900;", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("-0.550 → -1.550", StringComparison.Ordinal) || l.Contains("-0.550 →", StringComparison.Ordinal));
    }
}

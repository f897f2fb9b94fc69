using System.Globalization;
using Marten;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Reporting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Orchestrator.Studies;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Studies;

[Collection(PostgresCollection.Name)]
public sealed class When_a_study_goes_through_the_pipeline(PostgresServer postgres) : IAsyncLifetime
{
    /// <summary>2 methods × 2 rewards × 1 seed, and a sweep of B whose first value repeats the main grid's reinforce run.</summary>
    private const string Text = """
        kind: study
        name: tiny-study
        seeds: [7]
        task:
          kind: bandit
          bandit: {prompts: 4, hidden: 32, reference_steps: 50}
        rewards:
          - {label: peak70, reward_center: 70}
          - {label: peak20, reward_center: 20}
        loop: {B: 10, C: 10, M: 10, T: 1, gradient_steps: 12, learning_rate: 0.01, eval_every: 4, eval_samples: 200, dataset_prompts: 8}
        methods:
          - {name: dpo, data: offline}
          - {name: reinforce, data: online}
        sweeps:
          - {label: reinforce-B, method: reinforce, data: online, field: B, values: [10, 20]}
        """;

    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"preftune-study-{Guid.NewGuid():N}");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await postgres.DropSchemaAsync(_schema);
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task The_study_stream_links_its_runs_and_the_table_is_rebuilt_from_their_streams()
    {
        var study = StudyFile.Parse(Text, "tiny.yaml");
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = _schema, StageTimeoutSeconds = 60 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var runner = new StudyRunner(session);

        var (studyId, ran) = await runner.RunAsync(study, Text, "tiny.yaml", null, CancellationToken.None);
        var record = await StudyHistory.LoadAsync(session.Store, studyId, CancellationToken.None);
        var summary = new StudySummary(study.Name, studyId, record!.Runs);
        StudyReport.Write(_folder, summary);
        await runner.CompleteAsync(studyId, _folder, CancellationToken.None);

        // The study stream: the file's text, one link per cell, the report folder.
        await using var query = session.Store.QuerySession();
        var events = (await query.Events.FetchStreamAsync(studyId)).Select(e => e.Data).ToList();
        var started = Assert.IsType<StudyStarted>(events[0]);
        Assert.Equal(Text, started.SourceText);
        Assert.Equal(8, started.RunCount);
        var links = events.OfType<StudyRunFinished>().ToList();
        Assert.Equal(study.Runs.Select(r => r.Cell), links.Select(l => l.Cell));
        Assert.Equal(Path.GetFullPath(_folder), Assert.IsType<StudyCompleted>(events[^1]).ReportFolder);

        // It links exactly the runs that ran: six, as the two B = 10 cells repeat the main grid's reinforce runs.
        var recorded = await query.Query<RunSummary>().ToListAsync();
        Assert.Equal(recorded.Select(r => r.Id).Order(), links.Select(l => l.RunId).Distinct().Order());
        Assert.Equal(6, recorded.Count);
        Assert.All(recorded, r => Assert.Equal("completed", r.Status));
        Assert.Equal(2, links.Count(l => l.Reused));
        foreach (var reward in new[] { "peak70", "peak20" })
            Assert.Equal(links.Single(l => l.Cell.Reward == reward && l.Cell.Label == "reinforce (online)").RunId,
                links.Single(l => l.Cell.Reward == reward && l.Cell.SweepValue == 10).RunId);
        Assert.Equal(ran.Select(r => r.Outcome.RunId), links.Select(l => l.RunId));

        // Each run was made with its cell's reward and swept value.
        foreach (var link in links)
        {
            var run = (await RunHistory.LoadAsync(session.Store, link.RunId, CancellationToken.None))!;
            Assert.Equal(link.Cell.Reward == "peak70" ? 70 : 20, run.Started.Spec.Task.Bandit!.RewardCenter);
            Assert.Equal(link.Cell.SweepValue ?? 10, run.Started.Spec.Loop.B);
        }

        // Every number of table.csv equals the one computed here from the runs' own streams.
        var csv = File.ReadAllLines(Path.Combine(_folder, StudyReport.TableCsv));
        var header = csv[0].Split(',');
        Assert.Equal(1 + 8, csv.Length);   // 4 main-grid cells, 4 sweep cells (2 rewards × 2 values)
        foreach (var line in csv.Skip(1))
        {
            var row = header.Zip(line.Split(',')).ToDictionary(p => p.First, p => p.Second);
            var runs = new List<RunOutcome>();
            foreach (var id in row["run_ids"].Split(' ').Select(Guid.Parse))
                runs.Add((await RunHistory.LoadAsync(session.Store, id, CancellationToken.None))!.Outcome);
            var cellLinks = links.Where(l => l.Cell.Reward == row["reward"] && l.Cell.Label == row["label"]
                && (row["sweep_value"] == "" ? l.Cell.SweepValue is null : l.Cell.SweepValue == Number(row["sweep_value"])));
            Assert.Equal(cellLinks.Select(l => l.RunId), runs.Select(r => r.RunId));

            Assert.Equal(runs.Average(r => r.Evaluations[^1].MeanGoldReward), Number(row["final_gold_reward_mean"]), 12);
            Assert.Equal(runs.Average(r => r.Evaluations[^1].Metrics["eval/objective/kl"]), Number(row["eval_kl"]), 12);
            Assert.Equal(runs.Average(r => r.Evaluations[^1].Entropy), Number(row["eval_entropy"]), 12);
            Assert.Equal(runs.Select(r => r.Evaluations.Count).Distinct(), [4]);   // steps 0, 4, 8, 12 (B = 20: 0, 4, 8, 12 too)
            if (row["method"] == "dpo")
            {
                Assert.Equal(runs.Average(r => Tail(r, "train/rewards/chosen")), Number(row["rewards_chosen"]), 12);
                Assert.Equal(runs.Average(r => Tail(r, "train/rewards/rejected")), Number(row["rewards_rejected"]), 12);
                Assert.Equal(runs.Average(r => Tail(r, "train/rewards/margins")), Number(row["rewards_margins"]), 12);
                Assert.Equal(runs.Average(r => Head(r, "train/logps/chosen")), Number(row["logps_chosen_start"]), 12);
                Assert.Equal(runs.Average(r => Tail(r, "train/logps/chosen")), Number(row["logps_chosen_end"]), 12);
            }
            else
            {
                Assert.Equal("", row["rewards_margins"]);
            }
        }
    }

    private static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    private static double Tail(RunOutcome run, string metric) =>
        run.Updates.Where(u => u.Metrics.ContainsKey(metric)).TakeLast(10).Average(u => u.Metrics[metric]);

    private static double Head(RunOutcome run, string metric) =>
        run.Updates.Where(u => u.Metrics.ContainsKey(metric)).Take(10).Average(u => u.Metrics[metric]);
}

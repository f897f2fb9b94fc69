using System.Diagnostics;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Studies;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks.Length;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Findings;

/// <summary>
/// What PAPER.md's Problem 2 builds before any policy is trained, once per goal for the whole class: a preference dataset
/// sampled from the reference (stories260K on the 16 story-ending prompts, 8 responses each at temperature 1, every pair
/// with a gold gap), its pairs file, and a proxy reward model trained on it. Each goal is built the first time a test
/// asks for it, so a test pays only for the goals it uses; the temporary folder is removed at the end.
/// </summary>
public sealed class LengthTaskData : IAsyncLifetime
{
    /// <summary>48 new tokens, as the pipeline's tiny language-model runs: long enough that the reference has room to
    /// shorten (its mean is well above 20 there), short enough that a run of a dozen steps takes seconds per step.</summary>
    public const int MaxNewTokens = 48;

    /// <summary>8 responses per prompt: up to 28 pairs per prompt. Measured: at 48 tokens 99 of the 128 responses reach
    /// the cap, and pairs of two capped responses are ties (dropped), so 131 pairs remain.</summary>
    public static readonly PreferenceDatasetSettings Dataset = new() { Responses = 8, Seed = 1 };

    /// <summary>The proxy reward model's training: the paper's recipe (AdamW (0.9, 0.95), cosine, batch 32) at the learning
    /// rate the reward-model unit test uses for this 260K-parameter model (3e-3, with 5 warmup steps; the paper's 1e-5 is
    /// for Pythia-1.4B and barely moves a fresh head in a few dozen steps). Half the pairs held out, so that the accuracy
    /// is measured on some 65 pairs. 20 steps of 16 pairs (about 5 epochs of the training half): the first choice, 40 steps
    /// of 32 with a fifth held out, reached 0.923 on 26 held-out pairs but took 150 s per goal here (a step is 64
    /// sequences of prompt + response on one thread), too long for a test.</summary>
    public static readonly RewardTrainingSettings RewardTraining = new()
    {
        Steps = 20, Batch = 16, LearningRate = 3e-3, EvalFraction = 0.5, Seed = 1,
        Optimizer = new RewardTrainingSettings().Optimizer with { WarmupSteps = 5 },
    };

    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-length-findings-").FullName;
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly Dictionary<string, Built> _built = [];
    private readonly Lock _lock = new();
    private PostgresServer? _postgres;

    /// <summary>A goal's data as a study prepares it: the pairs file, the reward model (both recorded in the event store)
    /// and how long the preparation took.</summary>
    public sealed record Built(string Goal, StudyTaskPrepared Prepared, TimeSpan Elapsed)
    {
        public string PairsFile => Prepared.DatasetFile;
        public string RewardModel => Prepared.RewardModel;
        public int Pairs => Prepared.Pairs;
        public int? ModeLength => Prepared.ModeLength;
    }

    /// <summary>The shipped experiment's task (Min Length on stories260K), at <see cref="MaxNewTokens"/>.</summary>
    public static TaskSpec BaseTask()
    {
        var task = LanguageModelRuns.Shipped().Runs[0].Task;
        return task with { Model = task.Model! with { MaxNewTokens = MaxNewTokens } };
    }

    public Built For(string goal, PostgresServer postgres)
    {
        lock (_lock)
        {
            _postgres = postgres;
            if (!_built.TryGetValue(goal, out var built)) _built[goal] = built = Build(goal, postgres);
            return built;
        }
    }

    /// <summary>
    /// The study's preparation of one task (<see cref="TaskPreparation"/>: preference-data's sampling and pairing, then
    /// train-rm's training, each recorded). Mode: the mode of the sampled lengths, as PAPER.md defines it (ModeLength left
    /// open, the builder computes it). At 48 new tokens most of the reference's stories are cut at the cap, so that mode is
    /// the cap: Mode Length's geometry (the reward's peak where the reference has much of its mass) in its strongest form.
    /// </summary>
    private Built Build(string goal, PostgresServer postgres)
    {
        var clock = Stopwatch.StartNew();
        var task = BaseTask();
        task = task with { Length = task.Length! with { Goal = goal } };
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = _schema };
        using var store = EventStoreRegistration.For(options.Database, options.Schema);
        var prepared = TaskPreparation.PrepareAsync(goal, task, new StudyPreparation { Data = Dataset, RewardModel = RewardTraining }, threads: 1,
            _folder, new EventJournal(store, options), null, null, CancellationToken.None).GetAwaiter().GetResult();
        return new Built(goal, prepared, clock.Elapsed);
    }

    public async Task InitializeAsync() => await Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_postgres is not null) await _postgres.DropSchemaAsync(_schema);
        Directory.Delete(_folder, recursive: true);
    }
}

/// <summary>
/// PAPER.md's Problem 2 at reduced size (stories260K, 16 prompts, 48 new tokens, fixed seeds, a proxy reward model
/// learned from the reference's own preference data; the gold reward is only measured). Two of the paper's findings come
/// out: the proxy ranks held-out pairs far better than chance, and on Mode Length the methods end close to each other.
/// The third does not: on Min Length on-policy DPO is the slowest of the four here, not the fastest (the test says what
/// was measured and asserts that).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class On_the_length_tasks(PostgresServer postgres, LengthTaskData data, ITestOutputHelper output) : IClassFixture<LengthTaskData>
{
    /// <summary>The same loop for every method: the shipped experiment's optimizer (AdamW at 1e-4, clipping at 1) and T = 1,
    /// 2 prompts x 8 responses per step (B = M = 16, one gradient step per iteration), 12 gradient steps, an evaluation
    /// of 32 fresh responses (2 per prompt) every 6 steps (first chosen every 2, then 3; 6 keeps a test well under two minutes. Evaluation samples are seeded
    /// by the policy version, apart from training's, so the evaluations kept read the same numbers as before). Offline methods read the goal's pairs file, 8 pairs (C = 2) a
    /// step. One learning rate for all (the paper lowers offline DPO's; here the question is the gradient steps each needs
    /// under the same optimizer). Chosen once, before any measurement.</summary>
    private const int Steps = 12;
    private const int EvalEvery = 6;

    private RunSpec Spec(LengthTaskData.Built built, string method, DataSource source)
    {
        var shipped = LanguageModelRuns.Shipped().Runs[0];
        var task = LengthTaskData.BaseTask();
        return shipped with
        {
            Experiment = "findings",
            Label = $"{method} ({source}) {built.Goal}",
            Seed = 1,
            Task = task with
            {
                Length = task.Length! with
                {
                    Goal = built.Goal, ModeLength = built.ModeLength, Dataset = source == DataSource.Offline ? built.PairsFile : "",
                },
            },
            Method = new MethodSpec { Name = method, Data = source },
            RewardModel = new RewardModelSpec { Path = built.RewardModel },
            Loop = shipped.Loop with
            {
                B = 16, C = source == DataSource.Offline ? 2 : 8, M = 16, T = 1, GradientSteps = Steps, EvalEvery = EvalEvery,
                EvalSamples = 32, CheckpointEvery = Steps,
            },
        };
    }

    private static readonly (string Method, DataSource Source)[] Methods =
        [("dpo", DataSource.Online), ("dpo", DataSource.Offline), ("rwr", DataSource.Online), ("best-of-n", DataSource.Online)];

    /// <summary>Each method's run, in <see cref="Methods"/>' order, with every number written to the test output.</summary>
    private async Task<IReadOnlyList<RunOutcome>> RunAllAsync(LengthTaskData.Built built)
    {
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = PostgresServer.NewSchema(), StageTimeoutSeconds = 120 };
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var outcomes = new List<RunOutcome>();
        foreach (var (method, source) in Methods)
        {
            var outcome = await session.RunAsync(Spec(built, method, source), null, CancellationToken.None);
            Assert.True(outcome.Status == "completed", $"{outcome.Spec.Label}: {outcome.Status} {outcome.FailureReason}");
            output.WriteLine($"{outcome.Spec.Label,-28} {outcome.Elapsed.TotalSeconds,5:F1} s  mean length by step: "
                + string.Join("  ", outcome.Evaluations.Select(e => $"{e.Step}: {e.Metrics["eval/completions/mean_length"]:F1}"))
                + "  | gold: " + string.Join(" ", outcome.Evaluations.Select(e => $"{e.MeanGoldReward:F1}")));
            outcomes.Add(outcome);
        }
        return outcomes;
    }

    private void Describe(LengthTaskData.Built built) =>
        output.WriteLine($"{built.Goal}: {built.Pairs} pairs (mode {built.ModeLength?.ToString() ?? "-"}); reward model held-out accuracy "
            + $"{built.Prepared.EvalAccuracy:F3} on {built.Prepared.EvalPairs} pairs; prepared in {built.Elapsed.TotalSeconds:F1} s "
            + $"(the dataset's length histogram: {built.Prepared.DatasetFile}/../report.json)");

    [Fact]
    public void The_proxy_reward_model_ranks_held_out_min_length_pairs_far_better_than_chance()
    {
        var built = data.For("min", postgres);
        Describe(built);
        var (pairs, accuracy) = (built.Prepared.EvalPairs, built.Prepared.EvalAccuracy!.Value);
        // Held out: half of the pairs. At 0.75 on 60 or more pairs a coin (0.5, standard error 0.065) would be 4 standard errors short.
        Assert.True(pairs >= 60, $"only {pairs} held-out pairs");
        Assert.True(accuracy >= 0.75, $"held-out accuracy {accuracy:F3} on {pairs} pairs");
    }

    /// <summary>The first evaluated gradient step at which the mean length is at most half the reference's (int.MaxValue: never).</summary>
    private static int StepToHalf(RunOutcome run)
    {
        var reference = run.Evaluations[0].Metrics["eval/completions/mean_length"];
        return run.Evaluations.FirstOrDefault(e => e.Step > 0 && e.Metrics["eval/completions/mean_length"] <= reference / 2)?.Step ?? int.MaxValue;
    }

    /// <summary>
    /// PAPER.md expects on-policy DPO to reach a short length in fewer gradient steps than offline DPO and than on-policy
    /// RWR and Best-of-N (there ~60-80 steps to length 0 against ~150 for offline DPO, RWR still ~70 at 600). Here it did
    /// not come out, and the settings were not tuned until it would. Measured (seed 1, mean length of 32 fresh responses
    /// at steps 0, 3, 6, 9, 12 when evaluated every 3 steps; the test now evaluates at 0, 6 and 12, which read the same; the reference 38.0): on-policy DPO 38.0 37.9 29.0 22.4 13.7; offline DPO 38.0 30.0 17.6
    /// 12.6 6.0; on-policy RWR 38.0 32.3 13.3 2.7 1.0; on-policy Best-of-N 38.0 32.4 13.3 6.4 1.0. First step at half the
    /// reference's length: on-policy DPO 12, the three others 6. One reading, not tested: with a learned (continuous)
    /// reward and threshold 0, every pair of a group forms a DPO pair, including the many pairs of two responses cut at
    /// the 48-token cap whose proxy rewards differ by noise (99 of 128 reference responses reach it), while offline DPO's
    /// pairs are ranked by the gold length and drop those ties. What is asserted is what happens, so that a change to it
    /// is seen: every method halves the reference's mean length within the 12 steps (the proxy drives Min Length), and
    /// on-policy DPO ends longest.
    /// </summary>
    [Fact]
    public async Task On_min_length_every_method_halves_the_length_but_on_policy_dpo_is_the_slowest_here_not_the_fastest()
    {
        var built = data.For("min", postgres);
        Describe(built);
        var runs = await RunAllAsync(built);
        var steps = runs.Select(StepToHalf).ToList();
        var finals = runs.Select(r => r.Evaluations[^1].Metrics["eval/completions/mean_length"]).ToList();
        var summary = string.Join("; ", runs.Select((r, i) => $"{r.Spec.Label} {(steps[i] == int.MaxValue ? "never" : steps[i].ToString())}, final {finals[i]:F1}"));
        output.WriteLine("first step at half the reference's mean length, and the final mean length: " + summary);

        Assert.All(steps, s => Assert.True(s <= Steps, $"a method never halves the length: {summary}"));
        for (var i = 1; i < runs.Count; i++)
            Assert.True(finals[0] > finals[i], $"on-policy DPO is no longer the slowest, against {runs[i].Spec.Label} (the paper's order may be coming out; revisit): {summary}");
    }

    [Fact]
    public async Task On_mode_length_the_methods_end_close_to_each_other()
    {
        var built = data.For("mode", postgres);
        Describe(built);
        var runs = await RunAllAsync(built);
        var reference = -runs[0].Evaluations[0].MeanGoldReward;             // the reference's mean distance to the mode
        var finals = runs.Select(r => -r.Evaluations[^1].MeanGoldReward).ToList();
        var spread = finals.Max() - finals.Min();
        var summary = $"reference {reference:F1}; " + string.Join("; ", runs.Zip(finals, (r, d) => $"{r.Spec.Label} {d:F1}"));
        output.WriteLine($"final mean distance to the mode {built.ModeLength}: {summary}; spread {spread:F1}");

        // Measured (seed 1; the mode is the 48-token cap, see LengthTaskData.Build): reference 10.0 tokens from the mode;
        // final distances on-policy DPO 1.4, offline DPO 0.0, on-policy RWR 2.0, on-policy Best-of-N 1.0, spread 2.0. Every
        // method moves towards the cap, so this is the overlapping geometry at its easiest.
        // "Close": the methods' final distances differ by less than half of the reference's own distance to the mode, so
        // which method is used matters less than half of what there is to gain (PAPER.md: on Mode Length every method stays
        // within 5-30 tokens of the mode and none clearly wins).
        Assert.True(spread < reference / 2, $"spread {spread:F1}: {summary}");
    }
}

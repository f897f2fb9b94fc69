using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Runs;

namespace PrefTune.Tests.Unit.Reporting;

/// <summary>Hand-made run outcomes: evaluations every 10 steps with the given gold rewards, one update per step.</summary>
internal static class SyntheticRuns
{
    public static RunOutcome Run(string label, int seed, params double[] rewards) =>
        Run(label, seed, label.StartsWith("dpo", StringComparison.Ordinal) ? "dpo" : "best-of-n", DataSource.Online, rewards);

    public static RunOutcome Run(string label, int seed, string method, DataSource data, params double[] rewards)
    {
        var runId = Guid.NewGuid();
        var steps = (rewards.Length - 1) * 10;
        return new RunOutcome
        {
            RunId = runId,
            Spec = new RunSpec
            {
                Experiment = "synthetic", Label = label, Seed = seed,
                Task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() },
                Method = new MethodSpec { Name = method, Data = data },
                Loop = new LoopSpec { GradientSteps = steps },
            },
            Status = "completed",
            Evaluations = rewards.Select((r, i) => new PolicyEvaluated
            {
                RunId = runId, PolicyVersion = i * 10, Step = i * 10, Samples = 100,
                MeanGoldReward = r, GoldRewardStd = r / 2, Entropy = 4 - r,
            }).ToList(),
            Updates = Enumerable.Range(1, steps).Select(step => new UpdateApplied
            {
                RunId = runId, BatchId = Guid.Empty, Step = step, Pass = 0, Minibatch = 0,
                VersionBefore = step - 1, VersionAfter = step, SampleIds = [], Loss = 1.0 / step,
                Metrics = new Dictionary<string, double> { ["train/rewards/margins"] = step * 0.1 },
            }).ToList(),
            SamplesDrawn = steps * 10,
            GradientSteps = steps,
            Elapsed = TimeSpan.FromSeconds(1),
        };
    }

    public static Experiment Experiment(IReadOnlyList<RunOutcome> outcomes) => new()
    {
        Name = "synthetic",
        Runs = outcomes.Select(o => o.Spec).ToList(),
        Seeds = outcomes.Select(o => o.Spec.Seed).Distinct().ToList(),
    };

    public static string TempFolder() => Path.Combine(Path.GetTempPath(), $"preftune-report-{Guid.NewGuid():N}");
}

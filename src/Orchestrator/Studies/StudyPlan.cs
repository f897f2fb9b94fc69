using System.Globalization;

namespace PrefTune.Orchestrator.Studies;

/// <summary>What a study will do, said before it starts: runs, gradient steps, samples to draw, and (with the study's
/// own measured cost per step, when its file gives one) how long it should take.</summary>
public static class StudyPlan
{
    public static string Describe(Study study)
    {
        var distinct = study.Runs.Select(r => r.Spec).DistinctBy(StudyRunner.SameRunKey).ToList();
        var steps = distinct.Sum(s => (long)s.Loop.GradientSteps);
        var sampled = distinct.Sum(s => (long)s.Loop.GradientSteps / Math.Max(1, s.Loop.T * s.Loop.B / Math.Max(1, s.Loop.M)) * s.Loop.B);
        var evaluated = distinct.Sum(s => ((long)s.Loop.GradientSteps / Math.Max(1, s.Loop.EvalEvery) + 1) * s.Loop.EvalSamples);
        var prepared = study.Preparation is null ? "" : $"; first {study.Rewards.Count} task preparations (a dataset and a reward model each)";
        return string.Create(CultureInfo.InvariantCulture,
            $"{study.Name}: {study.Runs.Count} cells, {distinct.Count} distinct runs, {steps:N0} gradient steps, {sampled:N0} training and {evaluated:N0} evaluation samples{prepared}");
    }
}

using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Studies;
using Xunit;

namespace PrefTune.Tests.Unit.Studies;

/// <summary>Small study files for the tests, and helpers to load them.</summary>
internal static class StudyText
{
    public const string Source = "study.yaml";

    /// <summary>A valid study: 2 methods × 2 rewards × 2 seeds, and a sweep of B over 2 values (line numbers matter to the tests).</summary>
    public const string Minimal = """
        kind: study
        name: tiny-study
        seeds: [1, 2]
        task:
          kind: bandit
          bandit: {reward_width: 10}
        loop:
          B: 10
          C: 10
          M: 10
          gradient_steps: 40
        methods:
          - name: dpo
            data: offline
          - name: reinforce
        rewards:
          - {label: peak70, reward_center: 70}
          - {label: peak20, reward_center: 20}
        sweeps:
          - label: rwr-B
            method: rwr
            field: B
            values: [10, 40]
        """;

    public static Study Parse(string text) => StudyFile.Parse(text, Source);

    public static ExperimentFileException Problems(string text) =>
        Assert.Throws<ExperimentFileException>(() => StudyFile.Parse(text, Source));

    /// <summary>Asserts one problem was reported at <paramref name="path"/> containing <paramref name="fragment"/>, and returns it.</summary>
    public static ExperimentProblem ProblemAt(string text, string path, string fragment)
    {
        var error = Problems(text);
        var problem = Assert.Single(error.Problems, p => p.Path == path && p.Problem.Contains(fragment, StringComparison.Ordinal));
        Assert.Contains(problem.Describe(Source), error.Message, StringComparison.Ordinal);
        return problem;
    }
}

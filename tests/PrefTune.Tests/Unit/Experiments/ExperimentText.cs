using System.Runtime.CompilerServices;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Training.Methods;
using Xunit;

namespace PrefTune.Tests.Unit.Experiments;

/// <summary>Small experiment files for the tests, and helpers to load them.</summary>
internal static class ExperimentText
{
    public const string Source = "test.yaml";

    /// <summary>A valid file; tests append or replace lines to break it.</summary>
    public const string Minimal = """
        name: tiny
        task:
          kind: bandit
        loop:
          B: 10
          C: 10
          M: 10
        methods:
          - name: dpo
        """;

    public static Experiment Parse(string text) => ExperimentFile.Parse(text, Source);

    public static ExperimentFileException Problems(string text) =>
        Assert.Throws<ExperimentFileException>(() => ExperimentFile.Parse(text, Source));

    /// <summary>Asserts one problem was reported at <paramref name="path"/> containing <paramref name="fragment"/>, and returns it.</summary>
    public static ExperimentProblem ProblemAt(string text, string path, string fragment)
    {
        var error = Problems(text);
        var problem = Assert.Single(error.Problems, p => p.Path == path && p.Problem.Contains(fragment, StringComparison.Ordinal));
        Assert.Contains(problem.Describe(Source), error.Message, StringComparison.Ordinal);
        return problem;
    }

    public static string MethodNames => string.Join(", ", MethodRegistry.All.Select(m => m.Name).Order(StringComparer.Ordinal));

    /// <summary>The repository root (where PrefTune.sln is), found from the test assembly's folder or this source file.</summary>
    public static string RepositoryRoot([CallerFilePath] string thisFile = "")
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(thisFile) ?? "" })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "PrefTune.sln")))
                    return dir.FullName;
        throw new DirectoryNotFoundException("PrefTune.sln not found above " + AppContext.BaseDirectory);
    }
}

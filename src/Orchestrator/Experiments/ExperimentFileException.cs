namespace PrefTune.Orchestrator.Experiments;

/// <summary>One thing wrong with an experiment file, located by field path and line.</summary>
/// <param name="Path">Field path as written in the file, e.g. <c>methods[2].name</c> or <c>loop.B</c>.</param>
/// <param name="Line">1-based line of the field (or of its enclosing block when the field is missing).</param>
/// <param name="Problem">What is wrong.</param>
/// <param name="Allowed">What would be accepted, when that can be said.</param>
public sealed record ExperimentProblem(string Path, int? Line, string Problem, string? Allowed)
{
    public string Describe(string source) =>
        $"{source}: {(Path == "" ? "(document)" : Path)}{(Line is { } line ? $" (line {line})" : "")}: {Problem}"
        + (Allowed is null ? "" : $"; allowed: {Allowed}");
}

/// <summary>An experiment file failed validation; <see cref="Exception.Message"/> lists every problem, one per line.</summary>
public sealed class ExperimentFileException(string source, IReadOnlyList<ExperimentProblem> problems)
    : Exception(Format(source, problems))
{
    /// <summary>The file name or path the problems refer to.</summary>
    public string FileName { get; } = source;
    public IReadOnlyList<ExperimentProblem> Problems { get; } = problems;

    private static string Format(string source, IReadOnlyList<ExperimentProblem> problems) =>
        $"{source}: {problems.Count} problem{(problems.Count == 1 ? "" : "s")} in the experiment file"
        + Environment.NewLine
        + string.Join(Environment.NewLine, problems.Select(p => "  " + p.Describe(source)));
}

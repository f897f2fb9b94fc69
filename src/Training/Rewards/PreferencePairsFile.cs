using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrefTune.Training.Rewards;

/// <summary>One preference pair as the dataset holds it: y_w and y_l are prompt + response text, y_w preferred.</summary>
/// <param name="Line">1-based line of the JSONL file (for messages about the pair).</param>
/// <param name="ScoreDiff">score_diff: the gold reward's y_w_score - y_l_score as the builder wrote it.</param>
/// <param name="Reference">y_ref: the reference policy's text for the prompt (null allowed).</param>
public sealed record PreferencePair(int Line, string Prompt, string Chosen, string Rejected,
    double ChosenScore, double RejectedScore, double ScoreDiff, string? Reference);

/// <summary>A dataset line PrefTune cannot use; names the file, the 1-based line and the column.</summary>
public sealed class PreferenceDataException(string file, int line, string? column, string problem)
    : ArgumentException($"{file}:{line}{(column is null ? "" : $": column '{column}'")}: {problem}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
    public string? Column { get; } = column;
}

/// <summary>
/// Reads the preference-pair dataset (PAPER.md, Problem 2; the official code's columns): JSONL, one object per line
/// with <c>prompt, y_w, y_l, y_w_score, y_l_score, score_diff, y_ref</c>. Written here rather than shared with the
/// dataset builder so that the reward-model trainer checks exactly what it relies on: every column present, the
/// texts strings, the scores finite numbers, and the prompt a prefix of both texts (the reward model reads the whole
/// text, and a pair whose texts do not continue the prompt was built wrong). Blank lines are skipped.
/// </summary>
public static class PreferencePairsFile
{
    public static readonly IReadOnlyList<string> Columns = ["prompt", "y_w", "y_l", "y_w_score", "y_l_score", "score_diff", "y_ref"];

    /// <exception cref="PreferenceDataException">A line that is not a JSON object, a missing column, a wrong type.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static IReadOnlyList<PreferencePair> Read(string file)
    {
        if (!System.IO.File.Exists(file)) throw new FileNotFoundException($"{file}: no such dataset file", file);
        var pairs = new List<PreferencePair>();
        var number = 0;
        foreach (var text in System.IO.File.ReadLines(file))
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonObject row;
            try { row = JsonNode.Parse(text) as JsonObject ?? throw new JsonException("not a JSON object"); }
            catch (JsonException e) { throw new PreferenceDataException(file, number, null, $"not a JSON object ({e.Message})"); }
            foreach (var column in Columns)
                if (!row.ContainsKey(column))
                    throw new PreferenceDataException(file, number, column, $"missing (each line needs {string.Join(", ", Columns)})");

            string Text(string column) =>
                row[column] is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new PreferenceDataException(file, number, column, "expected a string");
            double Number(string column) =>
                row[column] is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d
                : throw new PreferenceDataException(file, number, column, "expected a finite number");

            var prompt = Text("prompt");
            var chosen = Text("y_w");
            var rejected = Text("y_l");
            if (!chosen.StartsWith(prompt, StringComparison.Ordinal))
                throw new PreferenceDataException(file, number, "y_w", "does not start with the prompt (y_w holds prompt + response)");
            if (!rejected.StartsWith(prompt, StringComparison.Ordinal))
                throw new PreferenceDataException(file, number, "y_l", "does not start with the prompt (y_l holds prompt + response)");
            var reference = row["y_ref"] is null ? null : Text("y_ref");
            pairs.Add(new PreferencePair(number, prompt, chosen, rejected, Number("y_w_score"), Number("y_l_score"), Number("score_diff"), reference));
        }
        if (pairs.Count == 0) throw new PreferenceDataException(file, number, null, "no preference pairs in the file");
        return pairs;
    }
}

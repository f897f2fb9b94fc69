using System.Text.Json.Nodes;

namespace PrefTune.Training.FineTuning;

/// <summary>One prompt/completion row as the file holds it.</summary>
/// <param name="Where">"FILE, line N" (JSONL, from 1) or "FILE, row N" (Parquet, from 0): how messages about the row name it.</param>
/// <param name="CompletionColumn">The column the completion came from (completion, or its alias response).</param>
public sealed record CompletionRow(string Where, string Prompt, string Completion, string CompletionColumn);

/// <summary>
/// Supervised fine-tuning data in TRL's prompt-completion form: columns <c>prompt</c> and <c>completion</c> (or
/// <c>response</c>, the one alias), as JSONL (one object per line, blank lines skipped) or Parquet (string columns).
/// The completion is the text that continues the prompt; only it is trained on. A missing file or column, a bad line, a
/// null or a non-string names the file, the line (JSONL, from 1) or row (Parquet, from 0) and the column, as
/// <see cref="Tasks.Length.PreferenceDataFiles"/> does.
/// </summary>
public static class CompletionDataFiles
{
    public const string PromptColumn = "prompt";
    public const string CompletionColumn = "completion";
    /// <summary>The only other name the completion column may have: many SFT datasets call it response.</summary>
    public const string CompletionAlias = "response";

    private static string Needs => $"each row needs {PromptColumn} and {CompletionColumn} (or {CompletionAlias})";

    /// <summary>Reads a .jsonl or .parquet file of the format.</summary>
    /// <exception cref="ArgumentException">No such file, an unknown extension, no rows, or a bad row (file, line/row and column named).</exception>
    public static Task<IReadOnlyList<CompletionRow>> ReadAsync(string path, CancellationToken ct = default) =>
        RowFiles.ReadAsync(path, ReadJsonl, ReadParquetAsync, "SFT data is", $"holds no rows ({Needs})", ct);

    /// <summary>Which of completion and response names the completion among <paramref name="columns"/>; both is ambiguous.</summary>
    private static string CompletionName(ICollection<string> columns, string where)
    {
        var (main, alias) = (columns.Contains(CompletionColumn), columns.Contains(CompletionAlias));
        if (main && alias) throw new ArgumentException($"{where}, column {CompletionAlias}: both {CompletionColumn} and {CompletionAlias} given; keep one");
        if (!main && !alias) throw new ArgumentException($"{where}, column {CompletionColumn}: missing ({Needs})");
        return main ? CompletionColumn : CompletionAlias;
    }

    private static List<CompletionRow> ReadJsonl(string path)
    {
        var rows = new List<CompletionRow>();
        foreach (var (where, row) in RowFiles.JsonlObjects(path))
        {
            string Text(string column) => row[column] switch
            {
                null => throw new ArgumentException($"{where}, column {column}: {(row.ContainsKey(column) ? "null" : $"missing ({Needs})")}"),
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                _ => throw new ArgumentException($"{where}, column {column}: expected a string"),
            };
            var prompt = Text(PromptColumn);
            var completion = CompletionName(row.Select(kv => kv.Key).ToList(), where);
            rows.Add(new CompletionRow(where, prompt, Text(completion), completion));
        }
        return rows;
    }

    private static async Task<List<CompletionRow>> ReadParquetAsync(string path, CancellationToken ct)
    {
        await using var stream = File.OpenRead(path);
        var (reader, fields) = await RowFiles.OpenParquetAsync(stream, path, ct);
        await using var _ = reader;
        RowFiles.Require(fields, path, [PromptColumn]);
        var completion = CompletionName(fields.Keys, path);
        var rows = new List<CompletionRow>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var count = checked((int)group.RowCount);
            var offset = rows.Count;   // rows are numbered across row groups
            async Task<string[]> Strings(string column)
            {
                var field = fields[column];
                if (!RowFiles.IsText(field))
                    throw new ArgumentException($"{path}, column {column}: holds {field.ClrType.Name}, expected strings");
                var values = new string?[count];
                await group.ReadAsync(field, values.AsMemory(), cancellationToken: ct);
                for (var i = 0; i < count; i++)
                    if (values[i] is null) throw new ArgumentException($"{path}, row {offset + i}, column {column}: null");
                return values!;
            }
            var (prompts, completions) = (await Strings(PromptColumn), await Strings(completion));
            for (var i = 0; i < count; i++)
                rows.Add(new CompletionRow($"{path}, row {offset + i}", prompts[i], completions[i], completion));
        }
        return rows;
    }
}

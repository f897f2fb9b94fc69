using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;

namespace PrefTune.Training.Tasks.Length;

/// <summary>
/// The paper's relabeled preference format on disk (PAPER.md, Problem 2): columns <c>prompt, y_w, y_l, y_w_score,
/// y_l_score, score_diff, y_ref</c>, as JSONL (one object per line) or Parquet (one row group, strings and doubles).
/// The reader takes either by extension; a missing column, a bad line, a null or a score that is not a finite number
/// names the file, the line (JSONL, from 1, blank lines skipped but counted) or row (Parquet, from 0) and the column,
/// and each row read carries that place (<see cref="PreferenceRow.Where"/>) for its consumers' messages. y_ref may be
/// null. What a consumer needs beyond the format (the reward model: y_w and y_l continue the prompt) it checks itself.
/// </summary>
public static class PreferenceDataFiles
{
    public static IReadOnlyList<string> Columns { get; } = ["prompt", "y_w", "y_l", "y_w_score", "y_l_score", "score_diff", "y_ref"];
    private static readonly string[] TextColumns = ["prompt", "y_w", "y_l", "y_ref"];
    private static readonly string[] ScoreColumns = ["y_w_score", "y_l_score", "score_diff"];

    /// <summary>Quotes and non-ASCII text written as themselves, not \u0022: the file is read by people too. Safe here,
    /// where the JSON never lands in HTML.</summary>
    private static readonly JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void WriteJsonl(string path, IEnumerable<PreferenceRow> rows)
    {
        // CreateNew: a dataset is never overwritten
        using var writer = new StreamWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write), new System.Text.UTF8Encoding(false));
        foreach (var row in rows)
        {
            var line = new JsonObject
            {
                ["prompt"] = row.Prompt, ["y_w"] = row.YW, ["y_l"] = row.YL,
                ["y_w_score"] = row.YWScore, ["y_l_score"] = row.YLScore, ["score_diff"] = row.ScoreDiff, ["y_ref"] = row.YRef,
            };
            writer.Write(line.ToJsonString(Readable));
            writer.Write('\n');
        }
    }

    public static async Task WriteParquetAsync(string path, IReadOnlyList<PreferenceRow> rows, CancellationToken ct = default)
    {
        var text = TextColumns.ToDictionary(c => c, c => new DataField<string>(c));
        var score = ScoreColumns.ToDictionary(c => c, c => new DataField<double>(c));
        var schema = new ParquetSchema(Columns.Select(c => text.TryGetValue(c, out var t) ? (Field)t : score[c]));
        await using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        await using var writer = await ParquetWriter.CreateAsync(schema, stream, cancellationToken: ct);
        using var group = writer.CreateRowGroup();
        foreach (var column in Columns)
        {
            if (text.TryGetValue(column, out var field))
                await group.WriteAsync(field, rows.Select(r => TextOf(r, column)).ToArray());
            else
                await group.WriteAsync(score[column], new ReadOnlyMemory<double>(rows.Select(r => ScoreOf(r, column)).ToArray()), cancellationToken: ct);
        }
    }

    /// <summary>Reads a .jsonl or .parquet file of the format.</summary>
    /// <exception cref="ArgumentException">A missing file or column, no rows, a bad line, a null or a score that is not a
    /// finite number: file, line/row and column named.</exception>
    public static Task<IReadOnlyList<PreferenceRow>> ReadAsync(string path, CancellationToken ct = default) =>
        RowFiles.ReadAsync(path, ReadJsonl, ReadParquetAsync, "a preference dataset is", "holds no pair", ct);

    private static List<PreferenceRow> ReadJsonl(string path)
    {
        var rows = new List<PreferenceRow>();
        foreach (var (where, row) in RowFiles.JsonlObjects(path))
        {
            // a key that is absent is missing; a key set to null is a wrong value (allowed for y_ref alone)
            JsonNode? Value(string column) =>
                row.TryGetPropertyValue(column, out var value) ? value : throw new ArgumentException($"{where}, column {column}: missing");
            string Text(string column) => Value(column) is JsonValue v && v.TryGetValue<string>(out var s) ? s
                : throw new ArgumentException($"{where}, column {column}: expected a string");
            double Score(string column) => Value(column) is JsonValue v && v.TryGetValue<double>(out var d)
                ? Finite(d, where, column)
                : throw new ArgumentException($"{where}, column {column}: expected a number");
            var prompt = Text("prompt");
            var (yw, yl) = (Text("y_w"), Text("y_l"));
            var (ywScore, ylScore, diff) = (Score("y_w_score"), Score("y_l_score"), Score("score_diff"));
            var reference = Value("y_ref") is null ? null : Text("y_ref");
            rows.Add(new PreferenceRow(prompt, yw, yl, ywScore, ylScore, diff, reference) { Where = where });
        }
        return rows;
    }

    private static async Task<List<PreferenceRow>> ReadParquetAsync(string path, CancellationToken ct)
    {
        await using var stream = File.OpenRead(path);
        var (reader, fields) = await RowFiles.OpenParquetAsync(stream, path, ct);
        await using var _ = reader;
        RowFiles.Require(fields, path, Columns);
        var rows = new List<PreferenceRow>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var count = checked((int)group.RowCount);
            var offset = rows.Count;   // rows are numbered across row groups
            var columns = new Dictionary<string, object?[]>();
            foreach (var column in Columns)
            {
                var field = fields[column];
                var values = new object?[count];
                if (RowFiles.IsText(field))
                {
                    if (!TextColumns.Contains(column)) throw new ArgumentException($"{path}, column {column}: holds text, expected numbers");
                    var strings = new string?[count];
                    await group.ReadAsync(field, strings.AsMemory(), cancellationToken: ct);
                    strings.CopyTo(values, 0);
                }
                else if (TextColumns.Contains(column))
                    throw new ArgumentException($"{path}, column {column}: holds {field.ClrType.Name}, expected strings");
                else
                    await ReadNumbersAsync(group, field, values, path, column, ct);
                for (var i = 0; i < count; i++)
                {
                    if (values[i] is null && column != "y_ref") throw new ArgumentException($"{path}, row {offset + i}, column {column}: null");
                    if (values[i] is double d) Finite(d, $"{path}, row {offset + i}", column);
                }
                columns[column] = values;
            }
            for (var i = 0; i < count; i++)
                rows.Add(new PreferenceRow((string)columns["prompt"][i]!, (string)columns["y_w"][i]!, (string)columns["y_l"][i]!,
                    (double)columns["y_w_score"][i]!, (double)columns["y_l_score"][i]!, (double)columns["score_diff"][i]!, (string?)columns["y_ref"][i])
                    { Where = $"{path}, row {offset + i}" });
        }
        return rows;
    }

    /// <summary>A score must be a finite number: NaN or an infinity would poison every loss and mean it enters.</summary>
    private static double Finite(double score, string where, string column) =>
        double.IsFinite(score) ? score : throw new ArgumentException($"{where}, column {column}: {score.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not a finite number");

    /// <summary>A score column as doubles, nulls as null: double or integer columns (pandas writes integer scores as
    /// int64, and its columns as optional), read as the type they hold.</summary>
    private static async Task ReadNumbersAsync(ParquetRowGroupReader group, DataField field, object?[] values, string path, string column, CancellationToken ct)
    {
        async Task Read<T>(Func<T, double> convert) where T : struct
        {
            if (field.IsNullable)
            {
                var buffer = new T?[values.Length];
                await group.ReadAsync(field, buffer.AsMemory(), cancellationToken: ct);
                for (var i = 0; i < values.Length; i++) values[i] = buffer[i] is { } v ? convert(v) : null;
            }
            else
            {
                var buffer = new T[values.Length];
                await group.ReadAsync(field, buffer.AsMemory(), cancellationToken: ct);
                for (var i = 0; i < values.Length; i++) values[i] = convert(buffer[i]);
            }
        }
        if (field.ClrType == typeof(double)) await Read<double>(v => v);
        else if (field.ClrType == typeof(float)) await Read<float>(v => v);
        else if (field.ClrType == typeof(long)) await Read<long>(v => v);
        else if (field.ClrType == typeof(int)) await Read<int>(v => v);
        else throw new ArgumentException($"{path}, column {column}: holds {field.ClrType.Name}, expected numbers");
    }

    private static string? TextOf(PreferenceRow row, string column) => column switch
    {
        "prompt" => row.Prompt, "y_w" => row.YW, "y_l" => row.YL, "y_ref" => row.YRef,
        _ => throw new ArgumentOutOfRangeException(nameof(column), column, null),
    };

    private static double ScoreOf(PreferenceRow row, string column) => column switch
    {
        "y_w_score" => row.YWScore, "y_l_score" => row.YLScore, "score_diff" => row.ScoreDiff,
        _ => throw new ArgumentOutOfRangeException(nameof(column), column, null),
    };
}

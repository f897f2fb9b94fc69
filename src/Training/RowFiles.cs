using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;

namespace PrefTune.Training;

/// <summary>
/// What the row-file formats (<see cref="FineTuning.CompletionDataFiles"/>, <see cref="Tasks.Length.PreferenceDataFiles"/>)
/// read alike: the format by extension, a JSONL file's objects with their line, a Parquet file's reader and columns.
/// Every message names the file and, where there is one, the line (JSONL, from 1, blank lines skipped but counted) or
/// row (Parquet, from 0) and the column, so that the formats name bad data alike; what a row holds each format reads itself.
/// </summary>
public static class RowFiles
{
    /// <summary>Reads <paramref name="path"/> as .jsonl or .parquet, by its extension.</summary>
    /// <param name="format">Completes "; {format} .jsonl or .parquet" in the unknown-extension message: "SFT data is".</param>
    /// <param name="empty">What the message says when the file holds no rows: "holds no pair".</param>
    /// <exception cref="ArgumentException">No such file, an unknown extension, no rows, or what the readers throw.</exception>
    public static async Task<IReadOnlyList<T>> ReadAsync<T>(string path, Func<string, List<T>> jsonl,
        Func<string, CancellationToken, Task<List<T>>> parquet, string format, string empty, CancellationToken ct)
    {
        if (!File.Exists(path)) throw new ArgumentException($"{path}: no such file");
        var rows = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".jsonl" => jsonl(path),
            ".parquet" => await parquet(path, ct),
            var other => throw new ArgumentException($"{path}: unknown extension '{other}'; {format} .jsonl or .parquet"),
        };
        if (rows.Count == 0) throw new ArgumentException($"{path}: {empty}");
        return rows;
    }

    /// <summary>Each line of a JSONL file that is not blank, as an object, with where it stands ("FILE, line N").</summary>
    /// <exception cref="ArgumentException">A line that is not JSON, or not an object (thrown as that line is reached).</exception>
    public static IEnumerable<(string Where, JsonObject Row)> JsonlObjects(string path)
    {
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var where = $"{path}, line {number}";
            JsonObject row;
            try { row = JsonNode.Parse(line) as JsonObject ?? throw new ArgumentException($"{where}: expected a JSON object"); }
            catch (JsonException e) { throw new ArgumentException($"{where}: not valid JSON ({e.Message})"); }
            yield return (where, row);
        }
    }

    /// <summary>A Parquet reader on <paramref name="stream"/> (the caller disposes both) and its data fields by name.</summary>
    /// <exception cref="ArgumentException">The file is not Parquet.</exception>
    public static async Task<(ParquetReader Reader, Dictionary<string, DataField> Fields)> OpenParquetAsync(Stream stream, string path, CancellationToken ct)
    {
        ParquetReader reader;
        try { reader = await ParquetReader.CreateAsync(stream, cancellationToken: ct); }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException)
        {
            throw new ArgumentException($"{path}: not a Parquet file ({e.Message})");
        }
        return (reader, reader.Schema.GetDataFields().ToDictionary(f => f.Name));
    }

    /// <exception cref="ArgumentException">A column the file does not have, named with those it has.</exception>
    public static void Require(IReadOnlyDictionary<string, DataField> fields, string path, IEnumerable<string> columns)
    {
        foreach (var column in columns)
            if (!fields.ContainsKey(column))
                throw new ArgumentException($"{path}, column {column}: missing (columns: {string.Join(", ", fields.Keys)})");
    }

    /// <summary>Whether a Parquet column holds strings: Parquet.Net 6 gives a string column's ClrType as
    /// ReadOnlyMemory&lt;char&gt;, and it still reads as strings.</summary>
    public static bool IsText(DataField field) => field.ClrType == typeof(string) || field.ClrType == typeof(ReadOnlyMemory<char>);
}

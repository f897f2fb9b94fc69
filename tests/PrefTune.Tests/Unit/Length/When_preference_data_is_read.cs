using Parquet;
using Parquet.Schema;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Length;

/// <summary>The paper's relabeled format on disk: JSONL and Parquet give back the rows written, and a bad file is
/// reported with its name, the line or row, and the column.</summary>
public sealed class When_preference_data_is_read : IDisposable
{
    private readonly string _folder = LengthSpecs.TempFolder();

    private static readonly PreferenceRow[] Rows =
    [
        new("Once upon a time", "Once upon a time, Tom.", "Once upon a time, there was a big dog who ran.", -3, -9, 6, "Once upon a time."),
        new("Tom had a red ball.", "Tom had a red ball. \"café 日本\"", "Tom had a red ball. It was\nround.", -0.5, -2.25, 1.75, "Tom had a red ball."),
    ];

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Should_round_trip_jsonl_and_parquet_to_the_same_rows()
    {
        var jsonl = Path.Combine(_folder, "pairs.jsonl");
        var parquet = Path.Combine(_folder, "pairs.parquet");
        PreferenceDataFiles.WriteJsonl(jsonl, Rows);
        await PreferenceDataFiles.WriteParquetAsync(parquet, Rows);
        Assert.Equal(Rows, await PreferenceDataFiles.ReadAsync(jsonl));
        Assert.Equal(Rows, await PreferenceDataFiles.ReadAsync(parquet));
        Assert.StartsWith("{\"prompt\":", File.ReadLines(jsonl).First(), StringComparison.Ordinal);
        Assert.Throws<IOException>(() => PreferenceDataFiles.WriteJsonl(jsonl, Rows));   // never overwritten
    }

    [Fact]
    public async Task Should_name_the_file_line_and_column_of_a_bad_jsonl_line()
    {
        var file = Path.Combine(_folder, "bad.jsonl");
        PreferenceDataFiles.WriteJsonl(file, Rows);
        File.AppendAllText(file, "{\"prompt\": \"x\", \"y_w\": \"x\", \"y_l\": \"x\", \"y_w_score\": 1, \"y_l_score\": 0, \"y_ref\": \"x\"}\n");
        var missing = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.Equal($"{file}, line 3, column score_diff: missing", missing.Message);

        File.WriteAllText(file, "{\"prompt\": \"x\", \"y_w\": \"x\", \"y_l\": \"x\", \"y_w_score\": \"high\", \"y_l_score\": 0, \"score_diff\": 1, \"y_ref\": \"x\"}\n");
        var wrong = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.Equal($"{file}, line 1, column y_w_score: expected a number", wrong.Message);

        var good = Path.Combine(_folder, "good.jsonl");
        PreferenceDataFiles.WriteJsonl(good, Rows);
        File.WriteAllText(file, File.ReadLines(good).First() + "\n\n{\"prompt\": \"x\",\n");
        var broken = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.StartsWith($"{file}, line 3: not valid JSON", broken.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_name_the_file_and_column_a_parquet_file_lacks_and_the_row_of_a_null()
    {
        var file = Path.Combine(_folder, "no-ref.parquet");
        // what another tool might write: integer scores, optional columns, and no y_ref
        var text = new[] { "prompt", "y_w", "y_l" }.Select(c => new DataField<string>(c)).ToList();
        var scores = new[] { "y_w_score", "y_l_score", "score_diff" }.Select(c => new DataField<long?>(c)).ToList();
        async Task Write(string path, bool withRef, string?[] yw)
        {
            var fields = new List<Field>([.. text, .. scores]);
            var reference = new DataField<string>("y_ref");
            if (withRef) fields.Add(reference);
            await using var stream = File.Create(path);
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(fields), stream);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(text[0], new[] { "a", "b" });
            await group.WriteAsync(text[1], yw);
            await group.WriteAsync(text[2], new[] { "a", "b" });
            foreach (var score in scores) await group.WriteAsync(score, new ReadOnlyMemory<long?>([2, 1]));
            if (withRef) await group.WriteAsync(reference, new[] { "a", "b" });
        }
        await Write(file, withRef: false, ["a", "b"]);
        var missing = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.StartsWith($"{file}, column y_ref: missing", missing.Message, StringComparison.Ordinal);

        var withNull = Path.Combine(_folder, "null.parquet");
        await Write(withNull, withRef: true, ["a", null]);
        var nullRow = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(withNull));
        Assert.Equal($"{withNull}, row 1, column y_w: null", nullRow.Message);

        var whole = Path.Combine(_folder, "ints.parquet");
        await Write(whole, withRef: true, ["a", "b"]);
        var rows = await PreferenceDataFiles.ReadAsync(whole);
        Assert.Equal(new PreferenceRow("b", "b", "b", 1, 1, 1, "b"), rows[1]);   // integer scores read as doubles
    }
}

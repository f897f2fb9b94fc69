using Parquet;
using Parquet.Schema;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Length;

/// <summary>The paper's relabeled format on disk, its one reader (offline runs, the experiment checks and the reward-model
/// trainer): JSONL and Parquet give back the rows written, each naming where it was read, and a bad file is reported with
/// its name, the line or row, and the column.</summary>
public sealed class When_preference_data_is_read : IDisposable
{
    private readonly string _folder = LengthSpecs.TempFolder();

    private static readonly PreferenceRow[] Rows =
    [
        new("Once upon a time", "Once upon a time, Tom.", "Once upon a time, there was a big dog who ran.", -3, -9, 6, "Once upon a time."),
        new("Tom had a red ball.", "Tom had a red ball. \"café 日本\"", "Tom had a red ball. It was\nround.", -0.5, -2.25, 1.75, null),   // y_ref may be null
    ];

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Should_round_trip_jsonl_and_parquet_to_the_same_rows()
    {
        var jsonl = Path.Combine(_folder, "pairs.jsonl");
        var parquet = Path.Combine(_folder, "pairs.parquet");
        PreferenceDataFiles.WriteJsonl(jsonl, Rows);
        await PreferenceDataFiles.WriteParquetAsync(parquet, Rows);
        var (fromJsonl, fromParquet) = (await PreferenceDataFiles.ReadAsync(jsonl), await PreferenceDataFiles.ReadAsync(parquet));
        Assert.Equal(Rows, fromJsonl.Select(r => r with { Where = null }));
        Assert.Equal(Rows, fromParquet.Select(r => r with { Where = null }));
        Assert.Equal([$"{jsonl}, line 1", $"{jsonl}, line 2"], fromJsonl.Select(r => r.Where));   // JSONL lines from 1
        Assert.Equal([$"{parquet}, row 0", $"{parquet}, row 1"], fromParquet.Select(r => r.Where));   // Parquet rows from 0
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

        File.WriteAllText(file, "{\"prompt\": \"x\", \"y_w\": \"x\", \"y_l\": \"x\", \"y_w_score\": 1, \"y_l_score\": 0, \"score_diff\": 1, \"y_ref\": 3}\n");
        var notText = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.Equal($"{file}, line 1, column y_ref: expected a string", notText.Message);   // null, but not any value

        File.WriteAllText(file, "\n");
        var empty = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(file));
        Assert.Equal($"{file}: holds no pair", empty.Message);
    }

    [Fact]
    public async Task Should_skip_blank_lines_but_count_them()
    {
        var file = Path.Combine(_folder, "gaps.jsonl");
        var good = Path.Combine(_folder, "good.jsonl");
        PreferenceDataFiles.WriteJsonl(good, Rows);
        var lines = File.ReadAllLines(good);
        File.WriteAllText(file, $"{lines[0]}\n\n   \n{lines[1]}\n\n");
        var rows = await PreferenceDataFiles.ReadAsync(file);
        Assert.Equal([$"{file}, line 1", $"{file}, line 4"], rows.Select(r => r.Where));
        Assert.Equal(Rows, rows.Select(r => r with { Where = null }));
    }

    [Fact]
    public async Task Should_refuse_a_score_that_is_not_a_finite_number()
    {
        // Parquet holds NaN and infinities as doubles; JSON has no literal for them, but a number too large for a double
        var parquet = Path.Combine(_folder, "nan.parquet");
        await PreferenceDataFiles.WriteParquetAsync(parquet, [Rows[0], Rows[1] with { ScoreDiff = double.NaN }]);
        var nan = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(parquet));
        Assert.Equal($"{parquet}, row 1, column score_diff: NaN is not a finite number", nan.Message);

        var jsonl = Path.Combine(_folder, "huge.jsonl");
        File.WriteAllText(jsonl, "{\"prompt\": \"x\", \"y_w\": \"x\", \"y_l\": \"x\", \"y_w_score\": 1e400, \"y_l_score\": 0, \"score_diff\": 1, \"y_ref\": null}\n");
        var huge = await Assert.ThrowsAsync<ArgumentException>(() => PreferenceDataFiles.ReadAsync(jsonl));
        Assert.StartsWith($"{jsonl}, line 1, column y_w_score: ", huge.Message, StringComparison.Ordinal);
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
        Assert.Equal(new PreferenceRow("b", "b", "b", 1, 1, 1, "b") { Where = $"{whole}, row 1" }, rows[1]);   // integer scores read as doubles
    }
}

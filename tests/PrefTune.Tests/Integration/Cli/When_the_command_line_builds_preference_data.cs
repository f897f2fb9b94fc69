using System.Security.Cryptography;
using Marten;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>`preftune preference-data` as a user runs it: a Skew Length file on stories260K, the files it writes and
/// the fact it records, whose hashes are the files'.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_builds_preference_data(PostgresServer postgres) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-prefdata-cli-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        await postgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task Should_write_the_pairs_and_record_their_hashes()
    {
        var prompts = Path.Combine(_folder, "prompts.jsonl");
        File.WriteAllLines(prompts, File.ReadLines(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "prompts", "story-endings.jsonl")).Take(2));
        var file = Path.Combine(_folder, "skew.yaml");
        File.WriteAllText(file, $"""
            name: prefdata-skew
            task:
              kind: length
              length:
                goal: skew
                skew_truncate: 8
                prompts: prompts.jsonl
              model:
                path: {Fixtures.StoriesHf}
                stop_ids: "1"
                max_new_tokens: 48
            loop:
              B: 8
              C: 4
              M: 8
            methods:
              - name: dpo
            """);
        var output = Path.Combine(_folder, "out");
        var (code, stdout, stderr) = await PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema,
            "preference-data", file, "--output", output, "--responses", "4", "--seed", "3", "--parquet");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Contains("pairs from 2 prompts x 4 responses (goal skew)", stdout.ReplaceLineEndings(" "), StringComparison.Ordinal);

        var rows = await PreferenceDataFiles.ReadAsync(Path.Combine(output, "pairs.jsonl"));
        var parquet = await PreferenceDataFiles.ReadAsync(Path.Combine(output, "pairs.parquet"));
        Assert.Equal(rows.Select(r => r with { Where = null }), parquet.Select(r => r with { Where = null }));   // the same rows, each from its own file
        Assert.All(rows, r => Assert.InRange(r.YLScore, -8, 0));   // every completion cut to at most 8 tokens

        using var store = EventStoreRegistration.For(postgres.ConnectionString, _schema);
        await using var session = store.QuerySession();
        var built = Assert.Single(await session.Events.QueryRawEventDataOnly<PreferenceDatasetBuilt>().ToListAsync());
        Assert.Equal(("skew", 8, 3L, 4, rows.Count), (built.Goal, built.SkewTruncate, built.Seed, built.ResponsesPerPrompt, built.Pairs));
        Assert.Equal(Fixtures.StoriesHf, built.ModelPath);
        Assert.Equal(["pairs.jsonl", "pairs.parquet", "report.json", "histogram.png"], built.Files.Select(f => f.Name));
        foreach (var written in built.Files)
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(output, written.Name)))), written.Sha256);
        var stream = await session.Events.FetchStreamAsync(built.DatasetId);
        Assert.IsType<PreferenceDatasetBuilt>(Assert.Single(stream).Data);

        // a second build never writes over the first
        var again = await PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, "preference-data", file, "--output", output);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("is not empty", again.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", again.Error, StringComparison.Ordinal);
    }
}

using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Cli;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Tests.Unit.RewardModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using Xunit;

namespace PrefTune.Tests.Integration.RewardModels;

/// <summary>`preftune train-rm` end to end: stories260K on a shorter-is-preferred dataset, the Hugging Face directory it
/// writes loaded by the Scorer's loader, and the fact recorded on its own stream.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_trains_a_reward_model(PostgresServer postgres) : IDisposable
{
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-train-rm-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task It_writes_a_reward_model_the_scorer_loads_and_records_the_training()
    {
        using var data = new ShorterIsPreferred();   // writes the dataset (and trains in memory, which is not used here)
        var dataset = Path.Combine(_folder, "pairs.jsonl");
        File.Copy(data.Dataset, dataset);
        var output = Path.Combine(_folder, "rm");
        var (code, stdout, error) = await PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, "train-rm", dataset, "--model", Fixtures.StoriesHf,
            "--output", output, "--steps", "60", "--batch", "8", "--learning-rate", "3e-3", "--warmup-steps", "5", "--eval-fraction", "0.25", "--seed", "3");
        Assert.True(code == 0, error + stdout);
        Assert.Contains("accuracy 1.000", stdout);
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl", "summary.json", "preftune.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        var metrics = File.ReadAllLines(Path.Combine(output, "metrics.jsonl"));
        Assert.Equal(62, metrics.Length);   // eval at 0, 60 steps, eval at 60
        Assert.Contains("\"eval/accuracy\":1", metrics[^1]);

        using (var scorer = RewardModelScorer.Load(new RewardModelSpec { Path = output }))
            Assert.Equal("LlamaForSequenceClassification", scorer.Config.Architecture);

        using var store = EventStoreRegistration.For(postgres.ConnectionString, _schema);
        await using var query = store.QuerySession();
        // the summary names the stream; the stream holds the fact alone
        var id = Guid.Parse(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "summary.json")))!["RewardModelId"]!.GetValue<string>());
        var stream = await query.Events.FetchStreamAsync(id);
        var fact = Assert.IsType<RewardModelTrained>(Assert.Single(stream).Data);
        Assert.Equal(id, fact.RewardModelId);
        Assert.Equal((60, 3, 36, 12, 1.0), (fact.Steps, fact.Seed, fact.TrainPairs, fact.EvalPairs, fact.EvalAccuracy));
        Assert.Equal(Sha256(Path.Combine(output, "model.safetensors")), fact.WeightsSha256);
        Assert.Equal(Sha256(dataset), fact.DatasetSha256);
        Assert.Equal((Path.GetFullPath(output), Path.GetFullPath(Fixtures.StoriesHf)), (fact.Output, fact.BaseModel));
    }

    private static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
}

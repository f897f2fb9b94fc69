using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Cli;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.FineTuning;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Integration.FineTuning;

/// <summary>`preftune sft` end to end: stories260K taught to end every story with one sentence, the Hugging Face directory
/// it writes loaded back as a causal LM (what task.model.path reads), and the fact recorded on its own stream.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_fine_tunes_a_policy(PostgresServer postgres, Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-sft-cmd-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task It_writes_a_model_that_loads_as_a_policy_and_records_the_fine_tuning()
    {
        var dataset = Path.Combine(_folder, "data.jsonl");
        File.WriteAllLines(dataset, TheEndEveryTime.Lines());
        var output = Path.Combine(_folder, "sft");
        var (code, stdout, error) = await PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, "sft", dataset, "--model", Fixtures.StoriesHf,
            "--output", output, "--steps", "40", "--batch", "8", "--learning-rate", "3e-3", "--warmup-steps", "4", "--eval-fraction", "0.25", "--seed", "5");
        log.WriteLine(stdout);
        Assert.True(code == 0, error + stdout);
        foreach (var file in new[] { "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl", "summary.json", "preftune.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        var metrics = File.ReadAllLines(Path.Combine(output, "metrics.jsonl"));
        Assert.Equal(42, metrics.Length);   // eval at 0, 40 steps, eval at 40
        Assert.Contains("\"eval/loss\"", metrics[0]);
        Assert.Contains("\"train/mean_token_accuracy\"", metrics[1]);
        Assert.Contains("\"grad_norm\"", metrics[1]);

        using (var model = Checkpoints.Load(output))
        {
            Assert.Equal(ModelHead.CausalLm, model.Config.Head);
            Assert.Equal([2], model.Config.StopIds);
        }

        using var store = EventStoreRegistration.For(postgres.ConnectionString, _schema);
        await using var query = store.QuerySession();
        var id = Guid.Parse(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(output, "summary.json")))!["PolicyId"]!.GetValue<string>());
        var stream = await query.Events.FetchStreamAsync(id);
        var fact = Assert.IsType<PolicyFineTuned>(Assert.Single(stream).Data);
        Assert.Equal(id, fact.PolicyId);
        Assert.Equal((40, 8, 5, 24, 8, 2), (fact.Steps, fact.Batch, fact.Seed, fact.TrainRows, fact.EvalRows, fact.StopId));
        Assert.True(fact.EvalTokenAccuracy > 0.95, $"eval token accuracy {fact.EvalTokenAccuracy}");
        Assert.Equal(Sha256(Path.Combine(output, "model.safetensors")), fact.WeightsSha256);
        Assert.Equal(Sha256(dataset), fact.DatasetSha256);
        Assert.Equal((Path.GetFullPath(output), Path.GetFullPath(Fixtures.StoriesHf)), (fact.Output, fact.BaseModel));
    }

    private static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
}

using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.Experiments;

/// <summary>
/// A length task's model, tokenizer and prompt file are checked when the file is read: nothing starts on a model that
/// cannot load, and each problem names its field and the file, tensor or line at fault.
/// </summary>
public sealed class When_an_experiment_names_a_language_model : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-lm-experiment-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Prompts(params string[] lines)
    {
        var file = Path.Combine(_folder, $"prompts-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    private static string Text(string model, string prompts, string extraModel = "", string extraTop = "") => $$"""
        name: lm
        task:
          kind: length
          length:
            prompts: {{prompts}}
          model:
            path: {{model}}
            stop_ids: "1"
            max_new_tokens: 32
        {{extraModel}}
        {{extraTop}}
        loop:
          B: 8
          C: 4
          M: 8
        methods:
          - name: dpo
        """;

    private string GoodPrompts => Prompts("""{"prompt": "Once upon a time"}""", """{"prompt": "Tom had a red ball."}""");

    /// <summary>A copy of a fixture folder with its config.json changed (the weights are the fixture's).</summary>
    private string BrokenModel(string fixture, Action<JsonObject> change)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder, "model-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        foreach (var file in Directory.GetFiles(Fixtures.Tiny(fixture)))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        change(config);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }

    [Fact]
    public void The_shipped_experiment_reads_with_its_paths_resolved_and_its_optimizer_bound()
    {
        var experiment = Integration.Pipeline.LanguageModelRuns.Shipped();

        var run = experiment.Runs[0];
        Assert.Equal("length", run.Task.Kind);
        Assert.True(Path.IsPathRooted(run.Task.Length!.Prompts) && File.Exists(run.Task.Length.Prompts));
        Assert.Equal(Fixtures.StoriesHf, run.Task.Model!.Path);
        Assert.Equal("1", run.Task.Model.StopIds);
        Assert.Equal(new OptimizerSettings { WeightDecay = 0, MaxGradNorm = 1.0, Schedule = ScheduleKind.Constant }, run.Optimizer);
        Assert.Equal(["dpo", "reinforce"], experiment.Runs.Select(r => r.Method.Name));
    }

    [Fact]
    public void The_optimizer_block_binds_every_key_and_names_bad_values()
    {
        var good = ExperimentText.Parse(Text(Fixtures.StoriesHf, GoodPrompts, extraTop: """
            optimizer:
              weight_decay: 0.01
              beta2: 0.95
              schedule: cosine
              warmup_steps: 2
              micro_batch: 4
            """));
        Assert.Equal(new OptimizerSettings { WeightDecay = 0.01, Beta2 = 0.95, Schedule = ScheduleKind.Cosine, WarmupSteps = 2, MicroBatch = 4 },
            good.Runs[0].Optimizer);

        var schedule = ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, GoodPrompts, extraTop: "optimizer:\n  schedule: exponential"),
            "optimizer.schedule", "unknown value 'exponential'");
        Assert.Equal("constant, linear, cosine", schedule.Allowed);
        ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, GoodPrompts, extraTop: "optimizer:\n  beta2: 1"), "optimizer.beta2", "must lie in [0, 1)");
        ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, GoodPrompts, extraTop: "optimizer:\n  micro_batch: 0"), "optimizer.micro_batch", "at least 1");
    }

    [Fact]
    public void Precision_reads_fp32_or_bf16_and_names_a_bad_value_with_its_line()
    {
        Assert.Equal(Precision.Fp32, ExperimentText.Parse(Text(Fixtures.StoriesHf, GoodPrompts)).Runs[0].Task.Model!.Precision);
        var bf16 = ExperimentText.Parse(Text(Fixtures.StoriesHf, GoodPrompts, extraModel: "    precision: bf16")).Runs[0];
        Assert.Equal(Precision.Bf16, bf16.Task.Model!.Precision);

        var problem = ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, GoodPrompts, extraModel: "    precision: fp16"),
            "task.model.precision", "unknown value 'fp16'");
        Assert.Equal("fp32, bf16", problem.Allowed);
        Assert.Equal(10, problem.Line);

        // fp32 is left out of the recorded JSON, so every spec recorded before precision existed keeps its text and hash.
        Assert.DoesNotContain("Precision", System.Text.Json.JsonSerializer.Serialize(bf16.Task with { Model = bf16.Task.Model with { Precision = Precision.Fp32 } }));
        Assert.Contains("\"Precision\":1", System.Text.Json.JsonSerializer.Serialize(bf16.Task));
    }

    [Fact]
    public void A_missing_model_is_named_at_its_path()
    {
        ExperimentText.ProblemAt(Text(Path.Combine(_folder, "no-such-model"), GoodPrompts), "task.model.path", "no such model directory");
    }

    [Fact]
    public void A_misshapen_tensor_is_named_with_its_file_before_anything_runs()
    {
        var model = BrokenModel("tiny-llama", c => c["intermediate_size"] = 48);

        var problem = ExperimentText.ProblemAt(Text(model, GoodPrompts), "task.model.path", "model.layers.0.mlp.gate_proj.weight");

        Assert.Contains("model.safetensors", problem.Problem);
        Assert.Contains("[64, 32]", problem.Problem);   // what the file holds, beside what config.json implies
    }

    [Fact]
    public void An_unknown_architecture_is_named_in_config_json()
    {
        var model = BrokenModel("tiny-llama", c => c["architectures"] = new JsonArray("MambaForCausalLM"));

        var problem = ExperimentText.ProblemAt(Text(model, GoodPrompts), "task.model.path", "MambaForCausalLM");

        Assert.Contains("config.json", problem.Problem);
    }

    [Fact]
    public void A_tokenizer_whose_vocabulary_does_not_fit_the_model_is_refused()
    {
        // tiny-llama embeds 96 ids; stories260K's tokenizer makes 512
        var stories = Path.Combine(Fixtures.StoriesHf, "tokenizer.json");

        var problem = ExperimentText.ProblemAt(Text(Fixtures.Tiny("tiny-llama"), GoodPrompts, extraModel: $"    tokenizer: {stories}"),
            "task.model.tokenizer", "512 tokens");

        Assert.Contains("96", problem.Problem);
    }

    [Fact]
    public void A_prompt_longer_than_the_context_names_its_file_and_line()
    {
        var tooLong = string.Join(" ", Enumerable.Repeat("Lily and Tom went to the park to play.", 80));
        var prompts = Prompts("""{"prompt": "Once upon a time"}""", $$"""{"prompt": "{{tooLong}}"}""");

        var problem = ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, prompts), "task.length.prompts", "line 2");

        Assert.Contains(prompts, problem.Problem);
        Assert.Contains("context of 512", problem.Problem);
    }

    [Fact]
    public void A_bad_prompt_line_and_bad_stop_ids_are_named()
    {
        var prompts = Prompts("""{"prompt": "Once upon a time"}""", """{"text": "no prompt key"}""");
        ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, prompts), "task.length.prompts", "line 2: expected an object with a \"prompt\" string");

        var stop = ExperimentText.ProblemAt(Text(Fixtures.StoriesHf, GoodPrompts).Replace("stop_ids: \"1\"", "stop_ids: \"1,x\""),
            "task.model.stop_ids", "'x' is not a token id");
        Assert.Contains("0..511", stop.Problem);
    }

    [Fact]
    public void Relative_paths_are_read_from_the_experiment_files_folder()
    {
        var prompts = GoodPrompts;
        var file = Path.Combine(_folder, "experiment.yaml");
        File.WriteAllText(file, Text(Path.GetRelativePath(_folder, Fixtures.StoriesHf), Path.GetFileName(prompts)));

        var run = Orchestrator.Experiments.ExperimentFile.Load(file).Runs[0];

        Assert.Equal(Fixtures.StoriesHf, run.Task.Model!.Path);
        Assert.Equal(prompts, run.Task.Length!.Prompts);
    }

    [Fact]
    public void A_token_level_method_is_accepted_now_that_the_policy_has_a_value_head()
    {
        var run = ExperimentText.Parse(Text(Fixtures.StoriesHf, GoodPrompts).Replace("  - name: dpo", "  - name: ppo-token")).Runs[0];

        Assert.Equal("ppo-token", run.Method.Name);
    }
}

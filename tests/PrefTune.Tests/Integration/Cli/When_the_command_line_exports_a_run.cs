using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>
/// `preftune export` as a user runs it, against a recorded language-model run and a bandit run. The runs' events are
/// written here (a language-model run does not yet train end to end through the services): stories260K as the base,
/// versions 0 and 2 kept in a checkpoint directory, version 1 published but transient and removed.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_the_command_line_exports_a_run(PostgresServer postgres) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-export-cli-").FullName;
    private readonly Guid _lmRun = Guid.NewGuid();
    private readonly Guid _banditRun = Guid.NewGuid();
    private string _version2Sha = "";

    private string CheckpointDir => Path.Combine(_folder, "checkpoints");

    public async Task InitializeAsync()
    {
        TorchRuntime.UseThreads(1);
        var spec = new LanguageModelSpec { Path = Fixtures.StoriesHf };
        using var policy = (LanguageModelPolicy)new LanguageModelFamily(spec).CreatePolicy(0);
        var checkpoints = new DirectoryCheckpointStore(CheckpointDir);
        var version0 = await checkpoints.PutAsync(0, policy.SaveWeights(), default);
        using (no_grad())
        using (var generator = new Generator(3))
            foreach (var parameter in policy.parameters())
                using (var noise = randn(parameter.shape, generator: generator))
                    parameter.add_(noise * 0.02f);
        var version2 = await checkpoints.PutAsync(2, policy.SaveWeights(), default);
        _version2Sha = version2.Sha256;
        // published, but its weights were a transient copy that is gone
        var version1 = version2 with { Version = 1, Sha256 = new string('a', 64), Uri = "file:///removed/transient.ckpt" };

        using var store = EventStoreRegistration.For(postgres.ConnectionString, _schema);
        await using var session = store.LightweightSession();
        session.Events.StartStream(_lmRun,
            Started(_lmRun, new TaskSpec { Kind = "length", Length = new LengthSpec(), Model = spec }),
            new CheckpointPublished { RunId = _lmRun, Checkpoint = version0 },
            new CheckpointPublished { RunId = _lmRun, Checkpoint = version1 },
            new CheckpointPublished { RunId = _lmRun, Checkpoint = version2 },
            new RunCompleted { RunId = _lmRun, GradientSteps = 2, PolicyVersion = 2, CompletedAt = DateTimeOffset.UtcNow });
        session.Events.StartStream(_banditRun, Started(_banditRun, new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() }));
        await session.SaveChangesAsync();
    }

    private static RunStarted Started(Guid runId, TaskSpec task) => new()
    {
        RunId = runId,
        StartedAt = DateTimeOffset.UtcNow,
        Spec = new RunSpec
        {
            Experiment = "export-cli", Label = task.Kind, Task = task, Method = new MethodSpec { Name = "reinforce" },
            Loop = new LoopSpec { GradientSteps = 2, CheckpointEvery = 2 },
        },
    };

    public async Task DisposeAsync()
    {
        Directory.Delete(_folder, recursive: true);
        await postgres.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task The_last_kept_checkpoint_is_written_as_a_hugging_face_directory_by_default()
    {
        var output = Path.Combine(_folder, "out");

        var export = await PrefTuneAsync("export", _lmRun.ToString()[..8], "--output", output);

        Assert.True(export.ExitCode == 0, export.Error);
        Assert.Contains("version 2", export.Output);
        var provenance = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "preftune.json")))!;
        Assert.Equal(2, provenance["version"]!.GetValue<int>());
        Assert.Equal(_version2Sha, provenance["weights_sha256"]!.GetValue<string>());
        Assert.Equal(_lmRun.ToString(), provenance["run_id"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        using var loaded = Checkpoints.Load(output);
        Assert.Equal("LlamaForCausalLM", loaded.Config.Architecture);
    }

    [Fact]
    public async Task A_transient_version_names_the_nearest_kept_ones()
    {
        var export = await PrefTuneAsync("export", _lmRun.ToString(), "--version", "1", "--output", Path.Combine(_folder, "v1"));

        Assert.Equal(2, export.ExitCode);
        Assert.Contains("--version 1", export.Error);
        Assert.Contains("nearest kept: 0 or 2", export.Error);
        Assert.DoesNotContain("   at ", export.Error);
        Assert.False(Directory.Exists(Path.Combine(_folder, "v1")));
    }

    [Fact]
    public async Task A_version_never_published_says_what_was()
    {
        var export = await PrefTuneAsync("export", _lmRun.ToString(), "--version", "9", "--output", Path.Combine(_folder, "v9"));

        Assert.Equal(2, export.ExitCode);
        Assert.Contains("never published it (published 0-2)", export.Error);
    }

    [Fact]
    public async Task A_bandit_run_is_not_a_language_model_run()
    {
        var export = await PrefTuneAsync("export", _banditRun.ToString(), "--output", Path.Combine(_folder, "bandit"));

        Assert.Equal(2, export.ExitCode);
        Assert.Contains("not a language-model run", export.Error);
        Assert.Contains(_banditRun.ToString(), export.Error);
        Assert.DoesNotContain("   at ", export.Error);
    }

    [Fact]
    public async Task An_unknown_run_is_bad_input()
    {
        var export = await PrefTuneAsync("export", "ffffffff-nope", "--output", Path.Combine(_folder, "unknown"));

        Assert.Equal(2, export.ExitCode);
        Assert.Contains("no recorded run starts or ends with 'ffffffff-nope'", export.Error);
    }

    [Fact]
    public async Task A_non_empty_output_is_refused_and_left_untouched()
    {
        var output = Directory.CreateDirectory(Path.Combine(_folder, "mine")).FullName;
        File.WriteAllText(Path.Combine(output, "model.safetensors"), "the user's own");

        var export = await PrefTuneAsync("export", _lmRun.ToString(), "--output", output);

        Assert.Equal(2, export.ExitCode);
        Assert.Contains("not empty", export.Error);
        Assert.Equal(["model.safetensors"], Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName));
        Assert.Equal("the user's own", File.ReadAllText(Path.Combine(output, "model.safetensors")));
    }

    private Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(params string[] args) =>
        PrefTuneProcess.RunAsync(postgres.ConnectionString, _schema, [.. args, "--checkpoints", CheckpointDir]);
}

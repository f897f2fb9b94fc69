using PrefTune.Messages;
using PrefTune.Orchestrator.Experiments;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Experiments;

public class Loading_the_shipped_experiment_files
{
    [Theory]
    [InlineData("bandit-peak70.yaml", 70)]
    [InlineData("bandit-peak20.yaml", 20)]
    public void Gives_the_six_bandit_methods(string file, double center)
    {
        var experiment = ExperimentFile.Load(Path.Combine(RepositoryRoot(), "experiments", file));

        Assert.Equal(Path.GetFileNameWithoutExtension(file), experiment.Name);
        Assert.Equal(
            ["pref-ft (offline)", "best-of-n (offline)", "best-of-n (online)", "dpo (offline)", "dpo (online)", "reinforce (online)"],
            experiment.Runs.Select(r => r.Label));
        Assert.All(experiment.Runs, run =>
        {
            Assert.Equal(center, run.Task.Bandit!.RewardCenter);
            Assert.Equal(10, run.Task.Bandit.RewardWidth);
            Assert.Equal(experiment.Name, run.Experiment);
        });
    }
}

public class Loading_a_minimal_file
{
    [Fact]
    public void Fills_in_the_defaults()
    {
        var run = Assert.Single(Parse(Minimal).Runs);

        Assert.Equal("dpo (online)", run.Label);
        Assert.Equal(1, run.Seed);
        Assert.Equal(1, run.TorchThreads);
        Assert.Equal(DataSource.Online, run.Method.Data);
        Assert.Empty(run.Method.Parameters);
        Assert.Equal(new BanditSpec(), run.Task.Bandit);
        Assert.Equal(new LoopSpec(), run.Loop);
    }

    [Fact]
    public void Gives_one_run_per_method_and_seed()
    {
        var experiment = Parse(Minimal.Replace("name: tiny", "name: tiny\nseeds: [3, 4, 5]")
                               + "\n  - name: pref-ft\n    data: offline\n    label: sft");

        Assert.Equal([3, 4, 5], experiment.Seeds);
        Assert.Equal(
            [("dpo (online)", 3), ("dpo (online)", 4), ("dpo (online)", 5), ("sft", 3), ("sft", 4), ("sft", 5)],
            experiment.Runs.Select(r => (r.Label, r.Seed)));
        Assert.All(experiment.Runs, r => Assert.Equal("tiny", r.Experiment));
    }
}

public class Loading_a_file_with_every_block
{
    private const string Full = """
        name: full
        description: every key once
        seeds: [7]
        torch_threads: 2
        task:
          kind: bandit
          bandit:
            actions: 50
            reward_center: 20
            reward_width: 5
            data_location: -0.5
            data_scale: 0.3
            policy: categorical
            context_size: 16
            hidden: 32
            prompts: 4
            reference_steps: 50
            reference_learning_rate: 0.02
        loop:
          b: 40
          c: 4
          m: 20
          t: 2
          gradient_steps: 100
          learning_rate: 0.01
          eval_every: 5
          eval_samples: 200
          dataset_prompts: 16
          dataset_responses: 4
          temperature: 0.5
          checkpoint_every: 25
        methods:
          - name: dpo
            data: offline
            label: offline dpo
            parameters: { beta: 0.1 }
            loop: { learning_rate: 0.0005, T: 1 }
        """;

    [Fact]
    public void Sets_every_field()
    {
        var experiment = Parse(Full);
        var run = Assert.Single(experiment.Runs);

        Assert.Equal("every key once", experiment.Description);
        Assert.Equal(7, run.Seed);
        Assert.Equal(2, run.TorchThreads);
        Assert.Equal(new BanditSpec
        {
            Actions = 50, RewardCenter = 20, RewardWidth = 5, DataLocation = -0.5, DataScale = 0.3, Policy = "categorical",
            ContextSize = 16, Hidden = 32, Prompts = 4, ReferenceSteps = 50, ReferenceLearningRate = 0.02,
        }, run.Task.Bandit);
        Assert.Equal(new LoopSpec
        {
            B = 40, C = 4, M = 20, T = 1, GradientSteps = 100, LearningRate = 0.0005, EvalEvery = 5, EvalSamples = 200,
            DatasetPrompts = 16, DatasetResponses = 4, Temperature = 0.5, CheckpointEvery = 25,
        }, run.Loop);
        Assert.Equal("offline dpo", run.Label);
        Assert.Equal(DataSource.Offline, run.Method.Data);
        Assert.Equal(0.1, run.Method.Parameters["beta"]);
    }

    [Fact]
    public void Applies_loop_overrides_to_their_method_only()
    {
        var experiment = Parse(Minimal + "\n  - name: dpo\n    label: fast\n    loop: { learning_rate: 0.1 }");

        Assert.Equal([0.001, 0.1], experiment.Runs.Select(r => r.Loop.LearningRate));
    }

    [Fact]
    public void Reads_the_same_file_written_as_JSON()
    {
        const string json = """
            {
            	"name": "tiny-json",
            	"seeds": [1, 2],
            	"task": { "kind": "bandit", "bandit": { "reward_center": 20 } },
            	"loop": { "B": 10, "C": 10, "M": 10, "learning_rate": 1e-3 },
            	"methods": [ { "name": "dpo", "data": "offline", "parameters": { "beta": 0.1 } } ]
            }
            """;

        var experiment = ExperimentFile.Parse(json, "tiny.json");

        Assert.Equal(2, experiment.Runs.Count);
        Assert.Equal(20, experiment.Runs[0].Task.Bandit!.RewardCenter);
        Assert.Equal(0.1, experiment.Runs[0].Method.Parameters["beta"]);
        Assert.Equal("dpo (offline)", experiment.Runs[0].Label);
    }

    [Fact]
    public void Loads_from_disk_by_path()
    {
        var path = Path.Combine(Path.GetTempPath(), $"preftune-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{ "name": "disk", "task": { "kind": "bandit" }, "methods": [ { "name": "dpo" } ] }""");
        try
        {
            Assert.Equal("disk", ExperimentFile.Load(path).Name);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

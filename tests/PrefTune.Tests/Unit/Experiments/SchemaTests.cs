using System.Globalization;
using PrefTune.Messages;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Experiments;

/// <summary>The experiment file's keys come from the config records: every property is a key, spelled snake_case.</summary>
public class The_experiment_files_keys
{
    private static string Snake(string name) => name.Length == 1 ? name
        : string.Concat(name.Select((c, i) => char.IsUpper(c) ? (i > 0 ? "_" : "") + char.ToLowerInvariant(c) : c.ToString()));

    [Fact]
    public void Of_the_bandit_block_are_exactly_the_properties_of_BanditSpec()
    {
        var problem = ProblemAt(Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    bogus: 1"), "task.bandit.bogus", "unknown key 'bogus'");

        Assert.Equal(string.Join(", ", typeof(BanditSpec).GetProperties().Select(p => Snake(p.Name))), problem.Allowed);
    }

    [Fact]
    public void Of_the_loop_block_are_exactly_the_properties_of_LoopSpec()
    {
        var problem = ProblemAt(Minimal.Replace("  M: 10", "  M: 10\n  bogus: 1"), "loop.bogus", "unknown key 'bogus'");

        Assert.Equal(string.Join(", ", typeof(LoopSpec).GetProperties().Select(p => Snake(p.Name))), problem.Allowed);
    }

    [Fact]
    public void Each_set_the_property_they_name()
    {
        var bandit = new BanditSpec
        {
            Actions = 20, RewardCenter = 5, RewardWidth = 3, DataLocation = 0.1, DataScale = 0.5, Policy = "gpt", ContextSize = 7, Hidden = 9,
            Prompts = 3, ResponseLength = 4, Layers = 2, Heads = 2, Width = 8, ReferenceSteps = 5, ReferenceLearningRate = 0.02,
        };
        var loop = new LoopSpec
        {
            B = 20, C = 5, M = 10, T = 2, GradientSteps = 40, LearningRate = 0.003, EvalEvery = 4, EvalSamples = 50, DatasetPrompts = 6,
            DatasetResponses = 5, Temperature = 0.9, MaxStaleness = 1, CheckpointEvery = 7,
        };
        static string Block<T>(T record, string indent) => string.Join("\n", typeof(T).GetProperties().Select(p =>
            $"{indent}{Snake(p.Name)}: {Convert.ToString(p.GetValue(record), CultureInfo.InvariantCulture)}"));
        var text = $"name: tiny\ntask:\n  kind: bandit\n  bandit:\n{Block(bandit, "    ")}\nloop:\n{Block(loop, "  ")}\nmethods:\n  - name: dpo";

        var run = Parse(text).Runs[0];

        Assert.Equal(bandit, run.Task.Bandit);
        Assert.Equal(loop, run.Loop);
    }
}

using PrefTune.Orchestrator.Experiments;
using PrefTune.Training.Methods;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Experiments;

public class Loading_a_file_with_an_unknown_method
{
    [Fact]
    public void Names_the_field_and_the_allowed_values()
    {
        var error = Problems(Minimal + "\n  - name: pref-ft\n    data: offline\n  - name: dpoo");

        var problem = Assert.Single(error.Problems);
        Assert.Equal(new ExperimentProblem("methods[2].name", 12, "unknown method 'dpoo'", MethodNames), problem);
        Assert.Contains($"test.yaml: methods[2].name (line 12): unknown method 'dpoo'; allowed: {MethodNames}", error.Message);
    }
}

public class Loading_a_file_with_a_misspelt_key
{
    [Fact]
    public void Reports_a_top_level_typo_with_the_allowed_keys()
    {
        var problem = ProblemAt(Minimal + "\nseed: [1]", "seed", "unknown key 'seed'");

        Assert.Equal(10, problem.Line);
        Assert.Equal("name, description, seeds, torch_threads, task, optimizer, reward_model, loop, methods", problem.Allowed);
    }

    [Fact]
    public void Reports_a_nested_typo_with_its_full_path()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    reward_centre: 70");

        var problem = ProblemAt(text, "task.bandit.reward_centre", "unknown key");

        Assert.Equal(5, problem.Line);
        Assert.Contains("reward_center", problem.Allowed);
    }

    [Fact]
    public void Reports_a_parameter_the_method_does_not_have()
    {
        var problem = ProblemAt(Minimal + "\n    parameters: { betta: 0.1 }", "methods[0].parameters.betta", "unknown key 'betta'");

        Assert.Contains("beta", problem.Allowed);
    }

    [Fact]
    public void Reports_an_unknown_data_source()
    {
        var problem = ProblemAt(Minimal + "\n    data: onpolicy", "methods[0].data", "unknown value 'onpolicy'");

        Assert.Equal("online, offline", problem.Allowed);
    }

    [Fact]
    public void Reports_a_data_source_the_method_cannot_use()
    {
        var online = MethodRegistry.All.First(m => !m.Axes.OfflineData);

        var problem = ProblemAt(Minimal.Replace("name: dpo", $"name: {online.Name}\n    data: offline"),
            "methods[0].data", $"{online.Name} cannot train on offline data");

        Assert.Equal("online", problem.Allowed);
    }

    [Fact]
    public void Reports_an_unknown_task_kind()
    {
        var problem = ProblemAt(Minimal.Replace("kind: bandit", "kind: chess"), "task.kind", "unknown task kind 'chess'");

        Assert.Equal(string.Join(", ", PrefTune.Training.Tasks.PreferenceTasks.Kinds), problem.Allowed);
    }
}

public class Loading_a_file_with_a_value_of_the_wrong_type
{
    [Fact]
    public void Reports_text_where_a_number_goes()
    {
        var problem = ProblemAt(Minimal.Replace("B: 10", "B: ten"), "loop.B", "expected an integer, got 'ten'");

        Assert.Equal(5, problem.Line);
    }

    [Fact]
    public void Reports_a_fraction_where_an_integer_goes()
    {
        ProblemAt(Minimal.Replace("M: 10", "M: 2.5"), "loop.M", "expected an integer");
    }

    [Fact]
    public void Reports_a_quoted_number_in_JSON()
    {
        const string json = """{ "name": "j", "task": { "kind": "bandit" }, "loop": { "learning_rate": "0.1" }, "methods": [ { "name": "dpo" } ] }""";

        var error = Assert.Throws<ExperimentFileException>(() => ExperimentFile.Parse(json, "j.json"));

        var problem = Assert.Single(error.Problems);
        Assert.Equal("loop.learning_rate", problem.Path);
        Assert.Contains("expected a number, got the text \"0.1\"", problem.Problem);
    }

    [Fact]
    public void Reports_a_list_where_a_block_goes()
    {
        ProblemAt(Minimal.Replace("  - name: dpo", "  - name: dpo\n    parameters: [0.1]"), "methods[0].parameters", "expected a block of keys");
    }
}

public class Loading_a_file_with_a_value_out_of_range
{
    [Theory]
    [InlineData("B: 10", "B: 0", "loop.B", "B = 0 is below 1")]
    [InlineData("C: 10", "C: 0", "loop.C", "C = 0 is below 1")]
    [InlineData("M: 10", "M: -1", "loop.M", "M = -1 is below 1")]
    [InlineData("M: 10", "M: 10\n  T: 0", "loop.T", "T = 0 is below 1")]
    [InlineData("M: 10", "M: 10\n  gradient_steps: 0", "loop.gradient_steps", "gradient_steps = 0 is below 1")]
    [InlineData("M: 10", "M: 10\n  checkpoint_every: 0", "loop.checkpoint_every", "checkpoint_every = 0 is below 1")]
    [InlineData("M: 10", "M: 10\n  learning_rate: 0", "loop.learning_rate", "learning_rate = 0 is not positive")]
    [InlineData("M: 10", "M: 10\n  temperature: -1", "loop.temperature", "temperature = -1 is not positive")]
    [InlineData("kind: bandit", "kind: bandit\n  bandit: { reward_width: 0 }", "task.bandit.reward_width", "reward_width = 0 is not positive")]
    [InlineData("kind: bandit", "kind: bandit\n  bandit: { actions: 1 }", "task.bandit.actions", "actions = 1 is below 2")]
    [InlineData("name: tiny", "name: tiny\ntorch_threads: 0", "torch_threads", "torch_threads = 0 is below 1")]
    [InlineData("name: tiny", "name: tiny\nseeds: [1, 1]", "seeds", "seed 1 appears 2 times")]
    [InlineData("name: tiny", "name: my experiment", "name", "cannot name a results folder")]
    public void Names_the_field_and_the_bound(string find, string replace, string path, string problem)
    {
        ProblemAt(Minimal.Replace(find, replace), path, problem);
    }

    [Fact]
    public void Explains_that_B_must_hold_whole_prompts()
    {
        var problem = ProblemAt(Minimal.Replace("C: 10", "C: 4").Replace("B: 10", "B: 20"),
            "loop.M", "M = 10 is not a multiple of C = 4");
        ProblemAt(Minimal.Replace("C: 10", "C: 4").Replace("B: 10", "B: 10").Replace("M: 10", "M: 8"),
            "loop.B", "B = 10 is not a multiple of C = 4");

        Assert.Contains("Algorithm 1", problem.Allowed);
    }

    [Fact]
    public void Explains_that_B_must_split_into_minibatches_of_M()
    {
        var problem = ProblemAt(Minimal.Replace("B: 10", "B: 30").Replace("M: 10", "M: 20"), "loop.B", "B = 30 is not a multiple of M = 20");

        Assert.Equal(5, problem.Line);
        Assert.Contains("B/M minibatches of M", problem.Allowed);
    }

    [Fact]
    public void Requires_C_to_equal_the_dataset_responses_for_offline_data()
    {
        var text = Minimal.Replace("C: 10", "C: 5").Replace("M: 10", "M: 10\n  dataset_responses: 10") + "\n    data: offline";

        var problem = ProblemAt(text, "methods[0].data", "C = dataset_responses");

        Assert.Equal(11, problem.Line);
    }

    [Fact]
    public void Requires_two_dataset_responses_for_offline_data()
    {
        var text = Minimal.Replace("C: 10", "C: 1").Replace("M: 10", "M: 10\n  dataset_responses: 1") + "\n    data: offline";

        ProblemAt(text, "methods[0].data", "dataset_responses >= 2");
    }

    [Fact]
    public void Does_not_ask_online_methods_for_a_dataset()
    {
        var text = Minimal.Replace("C: 10", "C: 5").Replace("M: 10", "M: 10\n  dataset_responses: 1");

        Assert.Single(Parse(text).Runs);
    }

    [Fact]
    public void Blames_the_method_whose_loop_override_breaks_a_rule()
    {
        var problem = ProblemAt(Minimal + "\n    loop:\n      M: 20", "methods[0].loop.M", "B = 10 is not a multiple of M = 20");

        Assert.Equal(11, problem.Line);
    }

    [Fact]
    public void Rejects_two_entries_with_the_same_label()
    {
        var problem = ProblemAt(Minimal + "\n  - name: dpo", "methods[1]", "label 'dpo (online)' is already used by methods[0]");

        Assert.Equal(10, problem.Line);
    }
}

public class Loading_a_file_with_missing_parts
{
    [Fact]
    public void Reports_every_required_key()
    {
        var error = Problems("description: nothing else");

        Assert.Equal(["name", "task", "methods"], error.Problems.Select(p => p.Path));
    }

    [Fact]
    public void Reports_an_empty_file()
    {
        var problem = Assert.Single(Problems("# only a comment\n").Problems);

        Assert.Equal("the file is empty", problem.Problem);
    }

    [Fact]
    public void Reports_a_missing_file()
    {
        var error = Assert.Throws<ExperimentFileException>(() => ExperimentFile.Load("/no/such/experiment.yaml"));

        Assert.Contains("/no/such/experiment.yaml", error.Message);
    }
}

public class Loading_a_file_with_several_problems
{
    [Fact]
    public void Reports_them_all_at_once()
    {
        const string text = """
            name: many
            task:
              kind: bandit
              bandit: { reward_width: -1 }
            loop:
              B: 10
              C: 10
              M: 7
              learning_rate: fast
            methods:
              - name: dpoo
              - name: dpo
                lable: x
            """;

        var error = Problems(text);

        Assert.Equal(
            [
                ("task.bandit.reward_width", 4), ("loop.B", 6), ("loop.M", 8), ("loop.learning_rate", 9),
                ("methods[0].name", 11), ("methods[1].lable", 13),
            ],
            error.Problems.Select(p => (p.Path, p.Line ?? 0)));
        Assert.All(error.Problems, p => Assert.Contains(p.Describe(Source), error.Message));
        Assert.StartsWith("test.yaml: 6 problems", error.Message);
    }
}

public class Loading_a_file_that_is_not_valid_YAML
{
    [Fact]
    public void Names_the_line()
    {
        var error = Problems("name: x\ntask:\n  kind: bandit\n  bandit: reward_center: 70\nmethods: []\n");

        var problem = Assert.Single(error.Problems);
        Assert.Contains("not valid YAML/JSON", problem.Problem);
        Assert.Equal(4, problem.Line);
        Assert.Contains("test.yaml: (document) (line 4): not valid YAML/JSON", error.Message);
    }

    [Fact]
    public void Names_a_line_near_an_unclosed_bracket()
    {
        var error = Problems("name: x\ntask:\n  kind: bandit\nmethods: [ { name: dpo }\n");

        var problem = Assert.Single(error.Problems);
        Assert.Contains("not valid YAML/JSON", problem.Problem);
        Assert.InRange(problem.Line ?? 0, 4, 5);
    }

    [Fact]
    public void Names_the_line_of_a_duplicate_key()
    {
        var error = Problems(Minimal + "\nname: again");

        Assert.Equal(10, Assert.Single(error.Problems).Line);
    }
}

public class Loading_a_file_with_a_bandit_policy
{
    [Fact]
    public void Takes_the_gpt_policy_and_its_sizes()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    policy: gpt\n    response_length: 5\n    layers: 2\n    heads: 2\n    width: 16");

        var bandit = ExperimentFile.Parse(text, "test.yaml").Runs[0].Task.Bandit!;

        Assert.Equal(("gpt", 5, 2, 2, 16), (bandit.Policy, bandit.ResponseLength, bandit.Layers, bandit.Heads, bandit.Width));
    }

    [Fact]
    public void Refuses_a_token_level_method_for_the_categorical_policy_that_has_no_value_head()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    policy: categorical").Replace("  - name: dpo", "  - name: ppo-token");

        var problem = ProblemAt(text, "methods[0].name", "no value head");

        Assert.DoesNotContain("ppo-token", problem.Allowed);
        Assert.Contains("dpo", problem.Allowed);
    }

    [Fact]
    public void Names_an_unknown_policy_and_the_known_ones()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    policy: lstm");

        var problem = ProblemAt(text, "task.bandit.policy", "unknown policy 'lstm'");

        Assert.Equal("categorical, gpt", problem.Allowed);
    }
}

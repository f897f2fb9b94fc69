using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Studies;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Training.Methods;
using Xunit;
using static PrefTune.Tests.Unit.Studies.StudyText;

namespace PrefTune.Tests.Unit.Studies;

public class Loading_a_file_that_is_not_a_study
{
    [Fact]
    public void Refuses_an_experiment_file_at_its_missing_kind()
    {
        var error = Problems(ExperimentText.Minimal);

        var problem = Assert.Single(error.Problems);
        Assert.Equal("kind", problem.Path);
        Assert.Contains("kind: study", problem.Problem);
    }

    [Fact]
    public void Refuses_another_kind_with_its_line()
    {
        var problem = ProblemAt(Minimal.Replace("kind: study", "kind: mode-seeking-toy"), "kind", "unknown kind 'mode-seeking-toy'");

        Assert.Equal(1, problem.Line);
    }

    [Fact]
    public void Is_refused_by_preftune_run_with_a_pointer_to_preftune_study()
    {
        var error = Assert.Throws<ExperimentFileException>(() => ExperimentFile.Parse(Minimal, Source));

        var problem = Assert.Single(error.Problems);
        Assert.Equal("kind", problem.Path);
        Assert.Contains("preftune study study.yaml", problem.Allowed);
    }
}

public class Loading_a_study_with_a_broken_base
{
    [Fact]
    public void Applies_the_experiment_files_rules_to_the_methods()
    {
        var problem = ProblemAt(Minimal.Replace("  - name: reinforce", "  - name: reinforse"), "methods[1].name", "unknown method 'reinforse'");

        Assert.Equal(15, problem.Line);
    }

    [Fact]
    public void Applies_the_experiment_files_rules_to_the_loop()
    {
        var problem = ProblemAt(Minimal.Replace("  M: 10", "  M: 20"), "loop.B", "B = 10 is not a multiple of M = 20");

        Assert.Equal(8, problem.Line);
    }

    [Fact]
    public void Lists_the_study_keys_for_a_top_level_typo()
    {
        var problem = ProblemAt(Minimal + "\nreward: []", "reward", "unknown key 'reward'");

        Assert.Equal("kind, name, description, seeds, torch_threads, task, optimizer, reward_model, loop, methods, rewards, sweeps, prepare", problem.Allowed);
    }

    [Fact]
    public void Reports_every_problem_at_once()
    {
        var text = Minimal.Replace("name: tiny-study", "name: tiny study")
            .Replace("label: peak20", "label: peak 20")
            .Replace("field: B", "field: beta");

        var error = Problems(text);

        Assert.Equal(["name", "rewards[1].label", "sweeps[0].field"], error.Problems.Select(p => p.Path));
    }
}

public class Loading_a_study_with_a_broken_reward
{
    [Fact]
    public void Requires_the_reward_axis()
    {
        var text = Minimal.Replace("""
            rewards:
              - {label: peak70, reward_center: 70}
              - {label: peak20, reward_center: 20}

            """, "");

        ProblemAt(text, "rewards", "missing");
    }

    [Fact]
    public void Requires_a_label()
    {
        var problem = ProblemAt(Minimal.Replace("{label: peak20, reward_center: 20}", "{reward_center: 20}"), "rewards[1].label", "missing");

        Assert.Equal(18, problem.Line);
    }

    [Fact]
    public void Refuses_a_label_used_twice()
    {
        ProblemAt(Minimal.Replace("label: peak20", "label: peak70"), "rewards[1].label", "already used by rewards[0]");
    }

    [Fact]
    public void Lists_the_bandit_keys_for_a_typo()
    {
        var problem = ProblemAt(Minimal.Replace("reward_center: 20", "reward_centre: 20"), "rewards[1].reward_centre", "unknown key");

        Assert.Contains("reward_center", problem.Allowed);
        Assert.Contains("label", problem.Allowed);
        Assert.Equal(18, problem.Line);
    }

    [Fact]
    public void Checks_the_overridden_bandit_with_the_task_rules()
    {
        var problem = ProblemAt(Minimal.Replace("reward_center: 20}", "reward_center: 20, reward_width: 0}"),
            "rewards[1].reward_width", "reward_width = 0 is not positive");

        Assert.Equal(18, problem.Line);
    }
}

public class Loading_a_study_with_a_broken_sweep
{
    [Fact]
    public void Names_the_fields_that_can_be_swept()
    {
        var problem = ProblemAt(Minimal.Replace("field: B", "field: eval_every"), "sweeps[0].field", "cannot sweep 'eval_every'");

        Assert.Equal("B, C, M, T, learning_rate, gradient_steps", problem.Allowed);
        Assert.Equal(22, problem.Line);
    }

    [Fact]
    public void Says_which_value_breaks_which_rule_of_algorithm_1()
    {
        var problem = ProblemAt(Minimal.Replace("values: [10, 40]", "values: [10, 15, 40]"),
            "sweeps[0].values[1]", "B = 15: B = 15 is not a multiple of C = 10");

        Assert.Equal(23, problem.Line);
        Assert.Contains("B/C prompts", problem.Allowed);
    }

    [Fact]
    public void Reports_a_value_below_the_minimum()
    {
        ProblemAt(Minimal.Replace("field: B", "field: T").Replace("values: [10, 40]", "values: [0, 1]"),
            "sweeps[0].values[0]", "T = 0: T = 0 is below 1");
    }

    [Fact]
    public void Requires_every_value_to_end_at_the_same_step()
    {
        var problem = ProblemAt(Minimal.Replace("values: [10, 40]", "values: [10, 30]"),
            "sweeps[0].values[1]", "B = 30: gradient_steps = 40 is not a multiple of T*B/M = 3");

        Assert.Contains("would stop at step 42", problem.Problem);
    }

    [Fact]
    public void Applies_the_offline_rules_to_an_offline_sweep()
    {
        ProblemAt(Minimal.Replace("method: rwr", "method: dpo\n    data: offline").Replace("field: B", "field: C").Replace("values: [10, 40]", "values: [10, 5]"),
            "sweeps[0].values[1]", "C = 5: offline data needs C = dataset_responses");
    }

    [Fact]
    public void Wants_whole_numbers_for_B()
    {
        ProblemAt(Minimal.Replace("values: [10, 40]", "values: [10, 12.5]"), "sweeps[0].values[1]", "expected an integer");
    }

    [Fact]
    public void Refuses_a_repeated_value()
    {
        ProblemAt(Minimal.Replace("values: [10, 40]", "values: [10, 10]"), "sweeps[0].values", "10 appears 2 times");
    }

    [Fact]
    public void Refuses_an_empty_list_of_values()
    {
        ProblemAt(Minimal.Replace("values: [10, 40]", "values: []"), "sweeps[0].values", "the list is empty");
    }

    [Fact]
    public void Refuses_an_unknown_method_with_the_known_ones()
    {
        var problem = ProblemAt(Minimal.Replace("method: rwr", "method: rwrr"), "sweeps[0].method", "unknown method 'rwrr'");

        Assert.Equal(ExperimentText.MethodNames, problem.Allowed);
    }

    [Fact]
    public void Refuses_a_data_source_the_method_cannot_use()
    {
        var online = MethodRegistry.All.First(m => !m.Axes.OfflineData);

        ProblemAt(Minimal.Replace("method: rwr", $"method: {online.Name}\n    data: offline"), "sweeps[0].data", "cannot train on offline data");
    }

    [Fact]
    public void Refuses_a_parameter_the_method_does_not_have()
    {
        var problem = ProblemAt(Minimal.Replace("method: rwr", "method: rwr\n    parameters: {beta: 1}"), "sweeps[0].parameters.beta", "unknown key 'beta'");

        Assert.Contains("tau", problem.Allowed);
    }

    [Fact]
    public void Refuses_two_sweeps_with_one_label()
    {
        ProblemAt(Minimal + "\n  - {label: rwr-B, method: rwr, field: T, values: [1, 2]}", "sweeps[1].label", "already used by sweeps[0]");
    }
}

public class Loading_a_study_whose_runs_cannot_fit_in_memory
{
    [Fact]
    public void Refuses_a_swept_B_of_a_billion_at_the_value()
    {
        var error = Problems(Minimal.Replace("values: [10, 40]", "values: [10, 1000000000]"));

        Assert.Contains(error.Problems, p => p.Path == "sweeps[0].values[1]" && p.Problem.Contains("the run would hold about"));
    }

    [Fact]
    public void Refuses_a_reward_entry_whose_policy_is_too_large_at_its_own_key()
    {
        var error = Problems(Minimal.Replace("{label: peak20, reward_center: 20}", "{label: peak20, reward_center: 20, hidden: 10000000}"));

        Assert.Contains(error.Problems, p => p.Path == "rewards[1].hidden" && p.Problem.Contains("the run would hold about"));
    }

    [Fact]
    public void Refuses_a_reward_center_outside_the_actions_at_the_reward_entry()
    {
        ProblemAt(Minimal.Replace("reward_center: 20}", "reward_center: 700}"), "rewards[1].reward_center", "outside the actions");
    }
}

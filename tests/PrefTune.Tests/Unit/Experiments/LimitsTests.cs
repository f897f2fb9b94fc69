using PrefTune.Messages;
using PrefTune.Orchestrator.Cli;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Training.Policies;
using PrefTune.Training.Tasks;
using PrefTune.Training.Tasks.Bandit;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Experiments;

public class Loading_a_file_whose_run_cannot_fit_in_memory
{
    [Fact]
    public void Refuses_B_and_M_of_a_billion_naming_the_fields_the_estimate_and_the_limit()
    {
        var text = Minimal.Replace("B: 10", "B: 1000000000").Replace("M: 10", "M: 1000000000");

        var problem = ProblemAt(text, "loop.B", "the run would hold about");

        Assert.Equal(5, problem.Line);
        Assert.Contains("B = 1000000000", problem.Problem);
        Assert.Contains("M = 1000000000", problem.Problem);
        Assert.Contains("of memory available (", problem.Problem);
        Assert.Contains("TB", problem.Problem);
        Assert.Contains("loop.B", problem.Allowed);
    }

    [Fact]
    public void Blames_a_method_s_own_loop_override()
    {
        var text = Minimal + "\n    loop: {M: 1000000000, B: 1000000000}";

        ProblemAt(text, "methods[0].loop.B", "the run would hold about");
    }

    [Fact]
    public void Refuses_a_policy_too_large_at_the_task_field()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit: {hidden: 10000000}");

        var problem = ProblemAt(text, "task.bandit.hidden", "the run would hold about");

        Assert.Contains("hidden = 10000000", problem.Problem);
    }

    [Fact]
    public void Refuses_T_times_B_beyond_what_the_driver_counts()
    {
        ProblemAt(Minimal.Replace("M: 10", "M: 10\n  T: 1000000000"), "loop.T", "T * B = 10000000000 sample uses per iteration");
    }

    [Fact]
    public void Refuses_eval_samples_of_a_billion()
    {
        ProblemAt(Minimal.Replace("M: 10", "M: 10\n  eval_samples: 1000000000"), "loop.eval_samples", "the run would hold about");
    }

    [Fact]
    public void The_estimate_of_a_shipped_size_is_far_below_a_gigabyte_and_grows_with_B()
    {
        var task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec() };
        var small = MemoryLimit.Estimate(task, new LoopSpec(), DataSource.Online)!.Sum(t => t.Bytes);
        var large = MemoryLimit.Estimate(task, new LoopSpec { B = 100_000, M = 10 }, DataSource.Online)!.Sum(t => t.Bytes);

        Assert.InRange(small, 1, 1e9 / 10);
        Assert.True(large > 50 * small, $"{large} against {small}");
    }

    [Theory]
    [InlineData(8, 100, 64, 100)]
    [InlineData(3, 7, 5, 11)]
    public void The_categorical_policy_s_size_formula_counts_what_the_module_holds(int prompts, int context, int hidden, int actions)
    {
        using var policy = new CategoricalPolicy(TorchSharp.torch.zeros(prompts, context), hidden, actions);
        var held = policy.parameters().Sum(p => p.numel()) + (long)prompts * context;   // the context buffer travels in checkpoints too

        Assert.Equal(held, CategoricalPolicy.ParameterCount(prompts, context, hidden, actions));
    }

    [Theory]
    [InlineData(100, 10, 3, 3, 48)]
    [InlineData(17, 4, 1, 2, 8)]
    public void The_gpt_s_size_formula_counts_its_parameters(int vocab, int block, int layers, int heads, int width)
    {
        using var policy = new TinyGpt(vocab, block, layers, heads, width);

        Assert.Equal(policy.parameters().Sum(p => p.numel()), TinyGpt.ParameterCount(vocab, block, layers, width));
    }

    [Fact]
    public void The_footprint_of_the_gpt_bandit_counts_the_tokens_of_a_rollout()
    {
        var footprint = PreferenceTasks.Footprint(new TaskSpec { Kind = "bandit", Bandit = new BanditSpec { Policy = "gpt", ResponseLength = 5 } })!;

        Assert.Equal(6, footprint.TokensPerRollout);
        Assert.Contains(footprint.SampleFields, f => f.Key == "response_length" && f.Value == 5);
    }
}

public class Loading_a_file_with_task_parameters_outside_the_task
{
    [Fact]
    public void Refuses_a_reward_center_beyond_the_actions_with_its_line()
    {
        var text = Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    actions: 100\n    reward_center: 700");

        var problem = ProblemAt(text, "task.bandit.reward_center", "reward_center = 700 is outside the actions 0..99");

        Assert.Equal(6, problem.Line);
    }

    [Fact]
    public void Accepts_a_reward_center_on_the_last_action()
    {
        Parse(Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit: {actions: 100, reward_center: 99}"));
    }

    [Fact]
    public void Refuses_a_gpt_width_that_heads_do_not_divide()
    {
        ProblemAt(Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit: {policy: gpt, width: 50, heads: 3}"),
            "task.bandit.width", "width = 50 is not a multiple of heads = 3");
    }

    [Fact]
    public void Refuses_a_method_hyperparameter_out_of_its_range_as_the_loss_states_it()
    {
        var problem = ProblemAt(Minimal + "\n    parameters: {beta: -1}", "methods[0].parameters.beta", "beta = -1 is invalid");

        Assert.Equal("must be positive", problem.Allowed);
    }
}

public class Replaying_with_set_values
{
    private static readonly RunSpec Source = Parse(Minimal).Runs[0];

    [Fact]
    public void Refuses_a_negative_learning_rate_with_the_experiment_file_s_own_words()
    {
        var fromFile = ProblemAt(Minimal.Replace("M: 10", "M: 10\n  learning_rate: -1"), "loop.learning_rate", "learning_rate = -1");

        var error = Assert.Throws<ArgumentException>(() => ReplayCommand.Counterfactual(Source, "dpo", ["learning_rate=-1"]));

        Assert.Equal(new ExperimentProblem("learning_rate", null, fromFile.Problem, fromFile.Allowed).Describe("--set"), error.Message);
    }

    [Fact]
    public void Refuses_a_hyperparameter_out_of_range()
    {
        var error = Assert.Throws<ArgumentException>(() => ReplayCommand.Counterfactual(Source, "dpo", ["beta=0"]));

        Assert.Contains("--set: beta: beta = 0 is invalid", error.Message);
    }

    [Fact]
    public void Takes_values_the_rules_allow()
    {
        var spec = ReplayCommand.Counterfactual(Source, "ipo", ["learning_rate=0.05", "beta=0.2"]);

        Assert.Equal(0.05, spec.Loop.LearningRate);
        Assert.Equal(0.2, spec.Method.Parameters["beta"]);
    }
}

using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Toy;
using PrefTune.Tests.Unit.Experiments;
using Xunit;

namespace PrefTune.Tests.Unit.Toy;

/// <summary>Small toy files for the tests.</summary>
internal static class ToyText
{
    public const string Source = "toy.yaml";

    /// <summary>A valid file, line by line; tests replace lines to break it.</summary>
    public const string Minimal = """
        kind: mode-seeking-toy
        name: tiny-toy
        p0: [0.3, 0.3, 0.1, 0.3]
        q: [0.2, 0.1, 0.6, 0.1]
        learning_rate: 0.95
        steps: 3
        """;

    public static ExperimentFileException Problems(string text) =>
        Assert.Throws<ExperimentFileException>(() => ToyExperimentFile.Parse(text, Source));

    /// <summary>Asserts exactly one problem, at <paramref name="path"/>, mentioning <paramref name="fragment"/>, also in the message.</summary>
    public static ExperimentProblem SingleProblem(string text, string path, string fragment)
    {
        var error = Problems(text);
        var problem = Assert.Single(error.Problems);
        Assert.Equal(path, problem.Path);
        Assert.Contains(fragment, problem.Problem, StringComparison.Ordinal);
        Assert.Contains(problem.Describe(Source), error.Message, StringComparison.Ordinal);
        return problem;
    }
}

public class Loading_a_toy_file
{
    [Fact]
    public void Reads_the_repository_s_toy_kl_yaml_as_the_paper_s_case()
    {
        var experiment = ToyExperimentFile.Load(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "toy-kl.yaml"));

        Assert.Equal("toy-kl", experiment.Name);
        Assert.Equal(PaperToy.Spec.P0, experiment.Toy.P0);
        Assert.Equal(PaperToy.Spec.Q, experiment.Toy.Q);
        Assert.Equal(0.95, experiment.Toy.LearningRate);
        Assert.Equal(3, experiment.Toy.Steps);
    }

    [Fact]
    public void Accepts_a_sum_within_1e_6_of_1()
    {
        var experiment = ToyExperimentFile.Parse(ToyText.Minimal.Replace("[0.2, 0.1, 0.6, 0.1]", "[0.2, 0.1, 0.6, 0.1000005]"), ToyText.Source);

        Assert.Equal(0.1000005, experiment.Toy.Q[3]);
    }
}

public class Loading_a_toy_file_with_bad_values
{
    [Fact]
    public void Names_p0_and_its_line_when_it_does_not_sum_to_1()
    {
        var problem = ToyText.SingleProblem(ToyText.Minimal.Replace("p0: [0.3, 0.3, 0.1, 0.3]", "p0: [0.3, 0.3, 0.1, 0.2]"), "p0", "p0 sums to 0.9");

        Assert.Equal(3, problem.Line);
        Assert.Contains("summing to 1", problem.Allowed);
    }

    [Fact]
    public void Names_q_and_its_line_when_it_does_not_sum_to_1()
    {
        var problem = ToyText.SingleProblem(ToyText.Minimal.Replace("q: [0.2, 0.1, 0.6, 0.1]", "q: [0.2, 0.1, 0.6, 0.2]"), "q", "not 1");

        Assert.Equal(4, problem.Line);
    }

    [Fact]
    public void Names_q_when_its_length_differs_from_p0()
    {
        var problem = ToyText.SingleProblem(ToyText.Minimal.Replace("q: [0.2, 0.1, 0.6, 0.1]", "q: [0.2, 0.2, 0.6]"), "q", "q has 3 categories but p0 has 4");

        Assert.Equal(4, problem.Line);
        Assert.Equal("as many entries as p0 (4)", problem.Allowed);
    }

    [Fact]
    public void Names_the_entry_that_is_negative()
    {
        var text = ToyText.Minimal.Replace("q: [0.2, 0.1, 0.6, 0.1]", "q: [0.2, -0.1, 0.8, 0.1]");

        var problem = ToyText.SingleProblem(text, "q[1]", "q[1] = -0.1 is not positive");

        Assert.Equal(4, problem.Line);
    }

    [Fact]
    public void Refuses_a_zero_in_p0_because_its_logit_would_be_minus_infinity()
    {
        var problem = ToyText.SingleProblem(ToyText.Minimal.Replace("p0: [0.3, 0.3, 0.1, 0.3]", "p0: [0.4, 0.3, 0, 0.3]"), "p0[2]", "not positive");

        Assert.Contains("log p0", problem.Allowed);
    }

    [Fact]
    public void Needs_at_least_two_categories()
    {
        var text = ToyText.Minimal.Replace("p0: [0.3, 0.3, 0.1, 0.3]", "p0: [1]").Replace("q: [0.2, 0.1, 0.6, 0.1]", "q: [1]");

        var error = ToyText.Problems(text);

        Assert.Equal(["p0", "q"], error.Problems.Select(p => p.Path));
        Assert.All(error.Problems, p => Assert.Contains("at least 2", p.Problem));
    }

    [Theory]
    [InlineData("learning_rate: 0.95", "learning_rate: 0", "learning_rate", "learning_rate = 0 is not positive", 5)]
    [InlineData("learning_rate: 0.95", "learning_rate: fast", "learning_rate", "expected a number", 5)]
    [InlineData("steps: 3", "steps: 0", "steps", "steps = 0 is below 1", 6)]
    [InlineData("steps: 3", "steps: 2.5", "steps", "expected an integer", 6)]
    [InlineData("p0: [0.3, 0.3, 0.1, 0.3]", "p0: [0.3, 0.3, x, 0.3]", "p0[2]", "expected a number", 3)]
    [InlineData("p0: [0.3, 0.3, 0.1, 0.3]", "p0: 0.3", "p0", "expected a list", 3)]
    [InlineData("steps: 3", "step: 3", "step", "unknown key 'step'", 6)]
    [InlineData("name: tiny-toy", "name: tiny toy", "name", "cannot name a results folder", 2)]
    public void Names_the_field_and_its_line(string line, string replacement, string path, string fragment, int lineNumber)
    {
        var text = ToyText.Minimal.Replace(line, replacement);
        var error = ToyText.Problems(text);

        var problem = Assert.Single(error.Problems, p => p.Path == path);
        Assert.Contains(fragment, problem.Problem, StringComparison.Ordinal);
        Assert.Equal(lineNumber, problem.Line);
    }

    [Fact]
    public void Reports_every_missing_field_at_once()
    {
        var error = ToyText.Problems("kind: mode-seeking-toy\nname: empty");

        Assert.Equal(["p0", "q", "learning_rate", "steps"], error.Problems.Select(p => p.Path));
        Assert.All(error.Problems, p => Assert.StartsWith("missing", p.Problem));
    }

    [Fact]
    public void Stops_at_a_file_without_the_toy_kind_with_that_one_problem()
    {
        var problem = ToyText.SingleProblem(ExperimentText.Minimal, "kind", "missing");

        Assert.Contains("preftune run", problem.Problem);
        Assert.Equal("mode-seeking-toy", problem.Allowed);
    }

    [Fact]
    public void Stops_at_an_unknown_kind()
    {
        var problem = ToyText.SingleProblem(ToyText.Minimal.Replace("kind: mode-seeking-toy", "kind: bandit"), "kind", "unknown kind 'bandit'");

        Assert.Equal(1, problem.Line);
    }
}

public class Running_a_toy_file_as_a_bandit_experiment
{
    [Fact]
    public void Points_to_preftune_toy()
    {
        var error = Assert.Throws<ExperimentFileException>(() => ExperimentFile.Parse(ToyText.Minimal, ToyText.Source));

        var problem = Assert.Single(error.Problems);
        Assert.Equal(new ExperimentProblem("kind", 1, "a mode-seeking-toy file is not a bandit experiment", "run it with `preftune toy toy.yaml`"), problem);
    }
}

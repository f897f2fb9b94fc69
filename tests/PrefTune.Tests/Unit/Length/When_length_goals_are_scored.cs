using PrefTune.Messages;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.Tasks.Length;
using Xunit;

namespace PrefTune.Tests.Unit.Length;

/// <summary>The gold rules of Min, Mode and Skew Length (PAPER.md, Problem 2), worked out by hand, and their checks.</summary>
public sealed class When_length_goals_are_scored
{
    private static Rollout Response(int contentTokens, bool stopped) => new()
    {
        SampleId = Guid.Empty, PromptId = "p0", Group = 0, PromptTokens = [1, 403],
        ResponseTokens = [.. Enumerable.Range(10, contentTokens), .. stopped ? new[] { 1 } : []],
        TokenLogProbs = new float[contentTokens + (stopped ? 1 : 0)], PolicyVersion = 0,
        Finish = stopped ? FinishReason.Stop : FinishReason.Length,
    };

    [Fact]
    public void Should_give_min_length_minus_the_length()
    {
        Assert.Equal(-7.0, LengthTask.Gold("min", 7, null));
        Assert.Equal(0.0, LengthTask.Gold("min", 0, null));
    }

    [Fact]
    public void Should_give_mode_length_minus_the_distance_to_the_mode()
    {
        Assert.Equal(-3.0, LengthTask.Gold("mode", 7, 10));
        Assert.Equal(-3.0, LengthTask.Gold("mode", 13, 10));
        Assert.Equal(0.0, LengthTask.Gold("mode", 10, 10));
        Assert.Throws<ArgumentException>(() => LengthTask.Gold("mode", 10, null));
    }

    [Fact]
    public void Should_give_skew_length_min_lengths_reward()
    {
        Assert.Equal(LengthTask.Gold("min", 9, null), LengthTask.Gold("skew", 9, null));
        Assert.Throws<ArgumentException>(() => LengthTask.Gold("max", 9, null));
    }

    [Fact]
    public void Should_score_a_run_against_the_stop_free_length()
    {
        var task = new LengthTask(LengthSpecs.Stories(new LengthSpec { Goal = "mode", ModeLength = 5 }));
        Assert.Equal(-2.0, task.GoldReward(Response(3, stopped: true)));   // 3 content tokens, the stop token not counted
        Assert.Throws<ArgumentException>(() => new LengthTask(LengthSpecs.Stories(new LengthSpec { Goal = "mode" })));
    }

    [Fact]
    public void Should_cut_skews_completions_to_at_most_the_limit()
    {
        var cut = PreferenceDataset.Truncate(Response(10, stopped: true), 4);
        Assert.Equal([10, 11, 12, 13], cut.ResponseTokens);
        Assert.Equal(4, cut.ContentLength());
        Assert.Equal(FinishReason.Length, cut.Finish);   // cut, so it no longer ends on its stop token
        var kept = Response(3, stopped: true);
        Assert.Same(kept, PreferenceDataset.Truncate(kept, 4));
        Assert.Equal(-4.0, LengthTask.Gold("skew", cut.ContentLength(), null));
    }

    [Fact]
    public void Should_take_the_shortest_of_equally_frequent_lengths_as_the_mode()
    {
        Assert.Equal(5, PreferenceDataset.ModeOf([9, 5, 5, 9, 2]));
        Assert.Equal(7, PreferenceDataset.ModeOf([3, 7, 7]));
    }

    private static string File(string length) => $$"""
        name: lm-length-goals
        task:
          kind: length
          length:
        {{length}}
            prompts: {{LengthSpecs.TwoPrompts.Value}}
          model:
            path: {{Fixtures.StoriesHf}}
            stop_ids: "1"
            max_new_tokens: 48
        loop:
          B: 8
          C: 4
          M: 8
        methods:
          - name: dpo
        """;

    [Fact]
    public void Should_accept_each_goal_with_its_own_keys()
    {
        ExperimentText.Parse(File("    goal: min"));
        var mode = ExperimentText.Parse(File("    goal: mode\n    mode_length: 12"));
        Assert.Equal(12, mode.Runs[0].Task.Length!.ModeLength);
        var skew = ExperimentText.Parse(File("    goal: skew\n    skew_truncate: 8"));
        Assert.Equal(8, skew.Runs[0].Task.Length!.SkewTruncate);
    }

    [Fact]
    public void Should_refuse_a_key_its_goal_does_not_read_or_a_missing_cut()
    {
        ExperimentText.ProblemAt(File("    goal: min\n    mode_length: 12"), "task.length.mode_length", "goal min does not read it");
        ExperimentText.ProblemAt(File("    goal: mode\n    skew_truncate: 8"), "task.length.skew_truncate", "goal mode does not read it");
        ExperimentText.ProblemAt(File("    goal: skew"), "task.length.skew_truncate", "missing");
        ExperimentText.ProblemAt(File("    goal: skew\n    skew_truncate: 48"), "task.length.skew_truncate", "nothing would be cut");
        ExperimentText.ProblemAt(File("    goal: mode\n    mode_length: 60"), "task.length.mode_length", "no response can reach it");
        ExperimentText.ProblemAt(File("    goal: longest"), "task.length.goal", "unknown goal 'longest'");
    }
}

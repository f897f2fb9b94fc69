using PrefTune.Messages;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Training.Policies;
using PrefTune.Training.Rewards;
using PrefTune.Training.Tasks;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Training;

/// <summary>Small specs for every registered policy kind, so a registry test builds real networks in milliseconds.</summary>
internal static class RegisteredKinds
{
    /// <summary>A small task spec whose policy is <paramref name="policy"/> (a kind of <paramref name="task"/>).</summary>
    public static TaskSpec SmallSpec(string task, string policy) => task switch
    {
        "bandit" => new TaskSpec
        {
            Kind = "bandit",
            Bandit = new BanditSpec
            {
                Policy = policy, Actions = 10, RewardCenter = 7, Prompts = 2, ContextSize = 4, Hidden = 8,
                ResponseLength = 3, Layers = 1, Heads = 2, Width = 8, ReferenceSteps = 2,
            },
        },
        "length" => new TaskSpec
        {
            Kind = "length",
            Length = new LengthSpec { Prompts = StoryPrompts.Value },
            Model = new LanguageModelSpec { Path = LanguageModels.Fixtures.StoriesHf, MaxNewTokens = 12 },
        },
        "preference" => new TaskSpec
        {
            Kind = "preference",
            Preference = new PreferenceSpec
            {
                Dataset = Path.Combine(Experiments.ExperimentText.RepositoryRoot(), "experiments", "data", "stories-trl-standard.jsonl"),
                GoldRewardModel = new RewardModelSpec { Path = Rewards.RewardModels.Random512.Value },
            },
            Model = new LanguageModelSpec { Path = LanguageModels.Fixtures.StoriesHf, MaxNewTokens = 12 },
        },
        _ => throw new ArgumentException($"no small spec for task kind '{task}': add one here when registering it"),
    };

    /// <summary>Two story openings in a JSONL prompt file the tests write (the fixture's own tokenizer encodes them).</summary>
    private static readonly Lazy<string> StoryPrompts = new(() =>
    {
        var file = Path.Combine(Path.GetTempPath(), $"preftune-prompts-{Environment.ProcessId}.jsonl");
        File.WriteAllLines(file, ["{\"prompt\": \"Once upon a time\"}", "{\"prompt\": \"Tom had a red ball.\"}"]);
        return file;
    });

    /// <summary>What each registered reward kind is built from for <paramref name="task"/>: gold needs the task alone, a
    /// learned model a reward model that reads every policy kind's ids (a random classifier over 512 ids, the stories
    /// vocabulary, which also covers the bandits' actions).</summary>
    public static RewardSource RewardSource(string kind, IPromptTask task) => kind switch
    {
        RewardRegistry.Gold => new RewardSource(task, task.GoldRewardModel is null ? null : Rewards.RewardModels.Random512Scorer.Value),
        RewardRegistry.Model => new RewardSource(task, Rewards.RewardModels.Random512Scorer.Value),
        _ => throw new ArgumentException($"no reward source for reward kind '{kind}': add one here when registering it"),
    };

    public static TheoryData<string, string> Policies()
    {
        var data = new TheoryData<string, string>();
        foreach (var policy in PolicyRegistry.All)
        foreach (var task in policy.Tasks)
            data.Add(task, policy.Name);
        return data;
    }
}

public class Every_registered_policy_kind
{
    public static TheoryData<string, string> Kinds() => RegisteredKinds.Policies();

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Builds_a_policy_that_samples_scored_responses_and_sets_a_footprint(string task, string policy)
    {
        var spec = RegisteredKinds.SmallSpec(task, policy);
        var built = PreferenceTasks.Create(spec);
        using var network = built.CreatePolicy(3);
        var fit = built.FitReference(network, 3);
        var prompts = built.PromptPool(3);
        var rollouts = built.Generate(network, prompts, 2, 1.0, seed: 5, policyVersion: 0, Guid.NewGuid());

        Assert.True(double.IsFinite(fit));
        Assert.Equal(2 * prompts.Count, rollouts.Count);
        // the gold reward: the task's rule, or its gold reward model (as the Scorer reads it)
        var gold = RewardRegistry.Get(RewardRegistry.Gold).Create(RegisteredKinds.RewardSource(RewardRegistry.Gold, built));
        Assert.All(rollouts, r => Assert.True(double.IsFinite(gold.Reward(r))));
        using (var scope = NewDisposeScope())
            Assert.Equal(rollouts.Select(r => (double)r.TokenLogProbs.Sum()), built.SequenceLogProbs(network, rollouts).to_type(ScalarType.Float64).data<double>().ToArray(),
                (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.True(PreferenceTasks.Footprint(spec)!.Weights > 0);
    }

    [Fact]
    public void Has_a_unique_name_within_its_task_and_answers_a_registered_task()
    {
        Assert.All(PolicyRegistry.All, p => Assert.All(p.Tasks, t => Assert.NotNull(TaskRegistry.Find(t))));
        var pairs = PolicyRegistry.All.SelectMany(p => p.Tasks.Select(t => (t, p.Name))).ToList();
        Assert.Equal(pairs.Count, pairs.Distinct().Count());
    }

    [Fact]
    public void Names_the_field_and_the_known_kinds_when_unknown()
    {
        var error = Assert.Throws<ArgumentException>(() => PolicyRegistry.Get("bandit", "lstm"));

        Assert.StartsWith($"task.bandit.policy: unknown policy 'lstm'; known: {string.Join(", ", PolicyRegistry.NamesFor("bandit"))}", error.Message);
    }

    [Fact]
    public void Is_exactly_what_the_experiment_file_allows_as_a_policy()
    {
        var text = ExperimentText.Minimal.Replace("  kind: bandit", "  kind: bandit\n  bandit:\n    policy: lstm");

        var problem = ExperimentText.ProblemAt(text, "task.bandit.policy", "unknown policy 'lstm'");

        Assert.Equal(string.Join(", ", PolicyRegistry.NamesFor("bandit")), problem.Allowed);
    }
}

public class Every_registered_task_kind
{
    public static TheoryData<string> Names() => [.. TaskRegistry.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(Names))]
    public void Builds_with_each_of_its_policy_kinds_and_names_the_one_asked_for(string name)
    {
        var kind = TaskRegistry.Find(name)!;
        var policies = PolicyRegistry.NamesFor(name);

        Assert.NotEmpty(policies);
        Assert.All(policies, policy =>
        {
            var spec = RegisteredKinds.SmallSpec(name, policy);
            Assert.Equal(policy, kind.PolicyOf(spec));
            Assert.Equal(spec, kind.Create(spec).Spec);
            Assert.NotEmpty(kind.Create(spec).PromptPool(1));
        });
    }

    [Fact]
    public void Has_a_unique_name()
    {
        Assert.Equal(TaskRegistry.All.Count, TaskRegistry.All.Select(t => t.Name).Distinct().Count());
        Assert.Equal(TaskRegistry.All.Select(t => t.Name), PreferenceTasks.Kinds);
    }

    [Fact]
    public void Is_exactly_what_the_experiment_file_allows_as_task_kind()
    {
        var problem = ExperimentText.ProblemAt(ExperimentText.Minimal.Replace("kind: bandit", "kind: chess"), "task.kind", "unknown task kind 'chess'");

        Assert.Equal(string.Join(", ", TaskRegistry.All.Select(t => t.Name)), problem.Allowed);
    }
}

public class Every_registered_reward_kind
{
    public static TheoryData<string> Names() => [.. RewardRegistry.All.Select(r => r.Name)];

    [Theory]
    [MemberData(nameof(Names))]
    public void Scores_every_policy_kinds_responses_with_a_finite_reward(string name)
    {
        foreach (var (task, policy) in PolicyRegistry.All.SelectMany(p => p.Tasks.Select(t => (t, p.Name))))
        {
            var built = PreferenceTasks.Create(RegisteredKinds.SmallSpec(task, policy));
            var reward = RewardRegistry.Get(name).Create(RegisteredKinds.RewardSource(name, built));
            using var network = built.CreatePolicy(1);
            var rollouts = built.Generate(network, built.PromptPool(1), 3, 1.0, seed: 2, policyVersion: 0, Guid.NewGuid());

            Assert.All(rollouts, r => Assert.True(double.IsFinite(reward.Reward(r))));
            Assert.Equal(rollouts.Select(reward.Reward), reward.Rewards(rollouts), (a, b) => Math.Abs(a - b) < 1e-4);   // batched as one at a time
        }
    }

    [Fact]
    public void Gold_is_the_tasks_gold_reward()
    {
        var built = PreferenceTasks.Create(RegisteredKinds.SmallSpec("bandit", "categorical"));
        var gold = RewardRegistry.Get(RewardRegistry.Gold).Create(new RewardSource(built));
        var rollouts = Enumerable.Range(0, 10).Select(a => new Rollout
        {
            SampleId = Guid.NewGuid(), PromptId = "p0", Group = 0, PromptTokens = [0], ResponseTokens = [a], TokenLogProbs = [0f], PolicyVersion = 0,
        }).ToList();

        // r(a) = exp(-((a - 7) / 10)^2): 1 at the centre, falling on both sides
        Assert.Equal(rollouts.Select(r => Math.Exp(-Math.Pow((r.ResponseTokens[0] - 7) / 10.0, 2))), rollouts.Select(gold.Reward));
    }

    [Fact]
    public void Model_names_the_reward_model_it_needs_when_given_none()
    {
        var built = PreferenceTasks.Create(RegisteredKinds.SmallSpec("bandit", "categorical"));

        var error = Assert.Throws<ArgumentException>(() => RewardRegistry.Get(RewardRegistry.Model).Create(new RewardSource(built)));

        Assert.StartsWith("reward_model: the model reward kind needs a loaded reward model", error.Message);
    }

    [Fact]
    public void Has_a_unique_name_and_names_the_known_ones_when_unknown()
    {
        Assert.Equal(RewardRegistry.All.Count, RewardRegistry.All.Select(r => r.Name).Distinct().Count());
        var error = Assert.Throws<ArgumentException>(() => RewardRegistry.Get("oracle"));
        Assert.StartsWith($"reward: unknown reward kind 'oracle'; known: {string.Join(", ", RewardRegistry.All.Select(r => r.Name))}", error.Message);
    }
}

using PrefTune.Messages;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>Small bandit runs that finish in seconds but still go through every stage.</summary>
public static class TinyRuns
{
    public static RunSpec Bandit(string method, DataSource data, int steps = 12, int seed = 7, double center = 70) => new()
    {
        Experiment = "tiny",
        Label = $"{method} ({data.ToString().ToLowerInvariant()})",
        Seed = seed,
        Task = new TaskSpec { Kind = "bandit", Bandit = new BanditSpec { RewardCenter = center, Prompts = 4, Hidden = 32, ReferenceSteps = 50 } },
        Method = new MethodSpec { Name = method, Data = data },
        Loop = new LoopSpec
        {
            B = 20, C = 10, M = 10, T = 1, GradientSteps = steps, LearningRate = 0.01,
            EvalEvery = 4, EvalSamples = 200, DatasetPrompts = 8, DatasetResponses = 10,
        },
    };
}

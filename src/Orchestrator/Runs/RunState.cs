using PrefTune.Messages;
using PrefTune.Training.Tasks;

namespace PrefTune.Orchestrator.Runs;

/// <summary>A run's mutable progress, owned by one <see cref="RunDriver"/>; rebuilt from the events to resume a run.</summary>
internal sealed class RunState(Guid runId, RunSpec spec)
{
    private readonly Random _promptDraws = new(spec.Seed);
    public Guid RunId { get; } = runId;
    public RunSpec Spec { get; } = spec;
    /// <summary>The run's task, built once: its prompts and dataset are read when first asked for.</summary>
    public IPreferenceTask Task { get; } = PreferenceTasks.Create(spec.Task);
    public IReadOnlyList<Prompt> PromptPool => Task.PromptPool(Spec.Seed);
    /// <summary>The prompts evaluations sample: the pool, or the task's held-out prompts.</summary>
    public IReadOnlyList<Prompt> EvaluationPool => Task.EvaluationPrompts(Spec.Seed);
    public CheckpointRef? Reference { get; set; }
    /// <summary>The Learner's current policy; every version ever set is kept in <see cref="Published"/>.</summary>
    public CheckpointRef? Policy
    {
        get;
        set
        {
            field = value;
            if (value is not null) Published[value.Version] = value;
        }
    }

    /// <summary>Every policy checkpoint of the run by version (a Sampler running ahead draws from older ones).</summary>
    public SortedList<int, CheckpointRef> Published { get; } = [];

    /// <summary>The newest published checkpoint at or below <paramref name="version"/>.</summary>
    public CheckpointRef PublishedAtOrBefore(int version) =>
        Published.Values.LastOrDefault(c => c.Version <= version) ?? Published.Values[0];
    public List<PolicyEvaluated> Evaluations { get; } = [];
    public List<UpdateApplied> Updates { get; } = [];
    public int SamplesDrawn { get; set; }
    /// <summary>Reward-model queries so far (training, dataset and evaluation batches).</summary>
    public int RewardQueries { get; set; }
    public int Steps => Updates.Count;

    /// <summary>Gradient steps per iteration of Algorithm 1: T passes of B/M minibatches.</summary>
    public int StepsPerIteration => Spec.Loop.T * Spec.Loop.B / Spec.Loop.M;
    public int Iterations => (Spec.Loop.GradientSteps + StepsPerIteration - 1) / StepsPerIteration;

    /// <summary>Step 1: B/C prompts drawn uniformly (with replacement) from the task's pool. Called in iteration
    /// order (a resumed run replays its earlier draws), so a run's prompts depend on its seed alone.</summary>
    public IReadOnlyList<Prompt> DrawPrompts(int count) =>
        Enumerable.Range(0, count).Select(_ => PromptPool[_promptDraws.Next(PromptPool.Count)]).ToList();

    public RunOutcome Outcome(string status, string? reason, TimeSpan elapsed) => new()
    {
        RunId = RunId, Spec = Spec, Status = status, FailureReason = reason, Evaluations = Evaluations,
        Updates = Updates, SamplesDrawn = SamplesDrawn, GradientSteps = Steps, Elapsed = elapsed,
    };
}

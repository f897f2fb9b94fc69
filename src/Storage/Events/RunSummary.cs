using PrefTune.Messages;

namespace PrefTune.Storage.Events;

/// <summary>
/// One row per run, kept up to date as its events are appended (an inline snapshot), so
/// <c>session.Query&lt;RunSummary&gt;()</c> lists runs without replaying streams.
/// </summary>
public sealed record RunSummary
{
    /// <summary>The RunId (the stream key).</summary>
    public Guid Id { get; init; }
    public string Experiment { get; init; } = "";
    public string Label { get; init; } = "";
    /// <summary>Registry name of the method.</summary>
    public string Method { get; init; } = "";
    public DataSource Data { get; init; }
    public int Seed { get; init; }
    /// <summary>"running", "completed", "failed" or "stopped" (by its owner, e.g. Ctrl-C; `resume` continues it).
    /// Whether a "running" run still has a live owner is its <see cref="RunLease"/>'s business.</summary>
    public string Status { get; init; } = "running";
    /// <summary>"{stage}: {reason}" of a failed run.</summary>
    public string? FailureReason { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>On-policy rollout batches (RolloutsGenerated with Purpose Training).</summary>
    public int TrainingBatches { get; init; }
    /// <summary>Offline-dataset rollout batches.</summary>
    public int DatasetBatches { get; init; }
    /// <summary>Evaluation rollout batches, when the run records them.</summary>
    public int EvaluationBatches { get; init; }
    /// <summary>Training and dataset rollouts (evaluation samples are counted in <see cref="EvaluationSamples"/>).</summary>
    public int SamplesGenerated { get; init; }
    /// <summary>Training and dataset rollouts scored.</summary>
    public int SamplesScored { get; init; }
    /// <summary>Evaluation rollouts generated, when recorded.</summary>
    public int EvaluationSamples { get; init; }
    public int BatchesAssembled { get; init; }
    /// <summary>Sample uses by gradient steps (a sample reused T times counts T times).</summary>
    public int SamplesConsumed { get; init; }
    /// <summary>Gradient steps recorded (UpdateApplied events).</summary>
    public int Updates { get; init; }
    public int Checkpoints { get; init; }
    public int Evaluations { get; init; }
    public int LastPolicyVersion { get; init; }
    /// <summary>Mean gold reward of the last evaluation.</summary>
    public double? FinalGoldReward { get; init; }
    /// <summary>Highest gradient step recorded, or the count the run completed with.</summary>
    public int GradientSteps { get; init; }

    public static RunSummary Create(RunStarted e) => new()
    {
        Id = e.RunId,
        Experiment = e.Spec.Experiment,
        Label = e.Spec.Label,
        Method = e.Spec.Method.Name,
        Data = e.Spec.Method.Data,
        Seed = e.Spec.Seed,
        StartedAt = e.StartedAt,
    };

    public static RunSummary Apply(PolicyInitialized e, RunSummary s) => s with { LastPolicyVersion = e.Policy.Version };

    public static RunSummary Apply(CheckpointPublished e, RunSummary s) =>
        s with { Checkpoints = s.Checkpoints + 1, LastPolicyVersion = e.Checkpoint.Version };

    public static RunSummary Apply(RolloutsGenerated e, RunSummary s) => e.Purpose switch
    {
        RolloutPurpose.Training => s with { TrainingBatches = s.TrainingBatches + 1, SamplesGenerated = s.SamplesGenerated + e.Rollouts.Count },
        RolloutPurpose.Dataset => s with { DatasetBatches = s.DatasetBatches + 1, SamplesGenerated = s.SamplesGenerated + e.Rollouts.Count },
        _ => s with { EvaluationBatches = s.EvaluationBatches + 1, EvaluationSamples = s.EvaluationSamples + e.Rollouts.Count },
    };

    public static RunSummary Apply(RolloutsScored e, RunSummary s) =>
        e.Purpose == RolloutPurpose.Evaluation ? s : s with { SamplesScored = s.SamplesScored + e.Scores.Count };

    public static RunSummary Apply(TrainingBatchAssembled e, RunSummary s) => s with { BatchesAssembled = s.BatchesAssembled + 1 };

    public static RunSummary Apply(UpdateApplied e, RunSummary s) => s with
    {
        Updates = s.Updates + 1,
        SamplesConsumed = s.SamplesConsumed + e.SampleIds.Count,
        GradientSteps = Math.Max(s.GradientSteps, e.Step),
        LastPolicyVersion = e.VersionAfter,
    };

    public static RunSummary Apply(PolicyTrained e, RunSummary s) => s with { LastPolicyVersion = e.Checkpoint.Version };

    public static RunSummary Apply(PolicyEvaluated e, RunSummary s) =>
        s with { Evaluations = s.Evaluations + 1, FinalGoldReward = e.MeanGoldReward };

    public static RunSummary Apply(RunCompleted e, RunSummary s) => s with
    {
        Status = "completed",
        EndedAt = e.CompletedAt,
        GradientSteps = e.GradientSteps,
        LastPolicyVersion = e.PolicyVersion,
        FinalGoldReward = e.FinalGoldReward ?? s.FinalGoldReward,
    };

    public static RunSummary Apply(RunFailed e, RunSummary s) => s with
    {
        Status = "failed",
        EndedAt = e.FailedAt,
        FailureReason = e.Stage is null ? e.Reason : $"{e.Stage}: {e.Reason}",
    };

    public static RunSummary Apply(RunStopped e, RunSummary s) => s with
    {
        Status = "stopped",
        EndedAt = e.StoppedAt,
        FailureReason = e.Signal is null ? e.Reason : $"{e.Reason} ({e.Signal})",
    };

    /// <summary>A resumed run is running again; its earlier failure stays in the stream.</summary>
    public static RunSummary Apply(RunResumed e, RunSummary s) => s with { Status = "running", EndedAt = null, FailureReason = null };
}

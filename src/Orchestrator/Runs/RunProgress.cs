namespace PrefTune.Orchestrator.Runs;

/// <summary>Where a run stands, for progress displays.</summary>
public sealed record RunProgress(Guid RunId, string Label, int Step, int TotalSteps, double? GoldReward);

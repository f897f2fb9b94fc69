using System.Text.Json.Serialization;
using JasperFx;
using JasperFx.Events;
using JasperFx.Events.Projections;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using PrefTune.Messages;
using Weasel.Core;

namespace PrefTune.Storage.Events;

/// <summary>
/// The event store: Marten on PostgreSQL, one stream per run keyed by its RunId, the <see cref="RunSummary"/>
/// snapshot kept inline, the <see cref="RunLedger"/> folded live on demand. The same options serve the
/// services (<see cref="AddPrefTuneEventStore"/>) and the CLI (<see cref="For"/>).
/// </summary>
public static class EventStoreRegistration
{
    /// <summary>
    /// Every fact a run's stream records, then those of a study's stream (keyed by StudyId; it links the runs of
    /// a study grid), then a preference dataset's (keyed by DatasetId) a reward model's (keyed by RewardModelId) and a fine-tuned policy's (keyed by PolicyId). Their stored names are pinned by a test: renaming one needs a MapEventType.
    /// </summary>
    public static IReadOnlyList<Type> RecordedEvents { get; } =
    [
        typeof(RunStarted),
        typeof(PolicyInitialized),
        typeof(CheckpointPublished),
        typeof(RolloutsGenerated),
        typeof(RolloutsScored),
        typeof(TrainingBatchAssembled),
        typeof(UpdateApplied),
        typeof(PolicyTrained),
        typeof(PolicyEvaluated),
        typeof(RunCompleted),
        typeof(RunFailed),
        typeof(RunResumed),
        typeof(RunReplayed),
        typeof(RunStopped),
        typeof(ServiceRestarted),
        typeof(StudyStarted),
        typeof(StudyRunFinished),
        typeof(StudyCompleted),
        typeof(StudyTaskPrepared),
        typeof(PreferenceDatasetBuilt),
        typeof(RewardModelTrained),
        typeof(PolicyFineTuned),
    ];

    /// <summary>Registers Marten (lightweight sessions) on <paramref name="connectionString"/>, tables in <paramref name="schema"/>.</summary>
    public static IServiceCollection AddPrefTuneEventStore(this IServiceCollection services, string connectionString, string schema = "preftune")
    {
        services.AddMarten(options => Configure(options, connectionString, schema)).UseLightweightSessions();
        return services;
    }

    /// <summary>A document store without dependency injection (the CLI's show and list commands). Dispose it.</summary>
    public static DocumentStore For(string connectionString, string schema = "preftune") =>
        new(Options(connectionString, schema));

    /// <summary>The store's options, for callers that build a <see cref="DocumentStore"/> themselves.</summary>
    public static StoreOptions Options(string connectionString, string schema = "preftune")
    {
        var options = new StoreOptions();
        Configure(options, connectionString, schema);
        return options;
    }

    public static void Configure(StoreOptions options, string connectionString, string schema)
    {
        options.Connection(connectionString);
        options.DatabaseSchemaName = schema;
        options.AutoCreateSchemaObjects = AutoCreate.All;
        options.UseSystemTextJsonForSerialization(EnumStorage.AsString, configure: json =>
        {
            // a diverged loss is NaN: record it rather than fail the append
            json.NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals;
        });

        options.Events.StreamIdentity = StreamIdentity.AsGuid;
        // Quick would leave the inline snapshot's version at 0
        options.Events.AppendMode = EventAppendMode.Rich;
        options.Events.AddEventTypes(RecordedEvents);

        options.Projections.Snapshot<RunSummary>(SnapshotLifecycle.Inline);
        // who holds a running run, until when: current state upserted by its owner, not a fact of the run
        options.Schema.For<RunLease>().UseOptimisticConcurrency(true);
        options.Projections.Add(new RunLedgerProjection(), ProjectionLifecycle.Live);
    }
}

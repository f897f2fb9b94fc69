namespace PrefTune.ServiceDefaults;

/// <summary>
/// Where a PrefTune process finds its broker, database and checkpoints. Bound from configuration:
/// command-line (--broker), environment (PREFTUNE_BROKER, PREFTUNE_DATABASE, ...) or appsettings.
/// </summary>
public sealed record PrefTuneOptions
{
    /// <summary>RabbitMQ address (amqp://user:password@host:port/vhost); empty runs every service in one process on the in-memory transport.</summary>
    public string? Broker { get; init; }
    /// <summary>Npgsql connection string; empty starts (or reuses) a private PostgreSQL under <see cref="DataFolder"/>.</summary>
    public string? Database { get; init; }
    /// <summary>Folder for the private PostgreSQL and local state.</summary>
    public string DataFolder { get; init; } = ".preftune";
    /// <summary>"postgres" (the default: every machine that reaches the database reaches the checkpoints) or a directory path.</summary>
    public string Checkpoints { get; init; } = "postgres";
    /// <summary>PostgreSQL schema holding the event store and checkpoints.</summary>
    public string Schema { get; init; } = "preftune";
    /// <summary>How long the Orchestrator keeps asking a stage for one answer (every retry included) before failing the run.</summary>
    public double StageTimeoutSeconds { get; init; } = 120;
    /// <summary>How long one attempt at a stage request waits before it is sent again. Requests are idempotent
    /// (seeded sampling, pure scoring, a Learner that answers a batch it already trained with its earlier result),
    /// so a request lost with a broker that went away is simply asked again.</summary>
    public double StageAttemptSeconds { get; init; } = 30;
    /// <summary>How long event-store and checkpoint-store calls keep retrying transient failures (a database
    /// restarting) before the run fails with the reason recorded.</summary>
    public double StoreRetrySeconds { get; init; } = 60;
    /// <summary>Consecutive failed stage attempts that open the circuit: further attempts wait out
    /// <see cref="CircuitBreakSeconds"/> instead of piling requests onto a broker that is down.</summary>
    public int CircuitBreakAfter { get; init; } = 3;
    /// <summary>How long an open circuit stays open.</summary>
    public double CircuitBreakSeconds { get; init; } = 5;
    /// <summary>How long a run's lease lasts unless its Orchestrator renews it (every third of it): after that, a run
    /// owned on another machine is shown as abandoned and may be resumed. On the owner's own machine, a dead owner
    /// process is known at once.</summary>
    public double LeaseSeconds { get; init; } = 30;
    /// <summary>How long to wait for a broker or database to answer at start-up before failing with its address.</summary>
    public double ConnectTimeoutSeconds { get; init; } = 5;
}

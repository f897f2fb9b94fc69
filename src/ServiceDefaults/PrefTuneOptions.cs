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
    /// <summary>How long the Orchestrator waits for any one stage's answer before failing the run.</summary>
    public double StageTimeoutSeconds { get; init; } = 120;
    /// <summary>How long to wait for a broker or database to answer at start-up before failing with its address.</summary>
    public double ConnectTimeoutSeconds { get; init; } = 5;
}

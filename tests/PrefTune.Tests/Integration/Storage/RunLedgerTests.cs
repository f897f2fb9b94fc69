using Marten;
using Npgsql;
using PrefTune.Messages;
using PrefTune.Storage.Events;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>The live <see cref="RunLedgerProjection"/> over a hand-made stream whose every number is known.</summary>
[Collection(PostgresCollection.Name)]
public sealed class When_a_run_ledger_is_folded(PostgresServer server) : IAsyncLifetime
{
    private readonly string _schema = PostgresServer.NewSchema();
    private DocumentStore _store = null!;
    private readonly Guid _runId = Guid.NewGuid();
    private readonly Guid[] _ids = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid()).ToArray();

    public async Task InitializeAsync()
    {
        _store = EventStoreRegistration.For(server.ConnectionString, _schema);
        // four samples drawn at version 0; step 1 uses two of them on-policy, step 2 the other two one version late
        var batch = Guid.NewGuid();
        await using var session = _store.LightweightSession();
        session.Events.StartStream(_runId,
            RunEvents.Started(_runId),
            new CheckpointPublished { RunId = _runId, Checkpoint = Checkpoint(0) },
            Generated(RolloutPurpose.Training, _ids),
            Generated(RolloutPurpose.Evaluation, [Guid.NewGuid()]),
            new TrainingBatchAssembled { RunId = _runId, BatchId = batch, Iteration = 0, Source = DataSource.Online, PolicyVersion = 0, SampleIds = _ids },
            Update(batch, 1, [_ids[0], _ids[1]], [0, 0]),
            Update(batch, 2, [_ids[2], _ids[3]], [Math.Log(2), -Math.Log(2)]),
            new CheckpointPublished { RunId = _runId, Checkpoint = Checkpoint(2) });
        await session.SaveChangesAsync();
    }

    public async Task DisposeAsync()
    {
        _store.Dispose();
        await server.DropSchemaAsync(_schema);
    }

    [Fact]
    public async Task Should_give_each_step_its_lags_and_each_sample_its_uses()
    {
        var ledger = await LedgerAsync();

        Assert.Equal(_runId, ledger.Id);
        Assert.Equal(_ids.Order(), ledger.Samples.Keys.Order());                          // the evaluation sample is left out
        Assert.Equal([[0, 0], [1, 1]], ledger.Steps.Select(s => s.Lags));
        var late = ledger.Samples[_ids[2]].Uses.Single();
        Assert.Equal((2, 0, 1, 1, 1), (late.Step, late.Pass, late.Minibatch, late.VersionBefore, late.Lag));
        Assert.Equal(2, late.ImportanceRatio!.Value, 12);
        Assert.Equal(0.5, ledger.Samples[_ids[3]].Uses.Single().ImportanceRatio!.Value, 12);
        var batch = Assert.Single(ledger.Batches);
        Assert.Equal((0, 0, 0.0, 4), (batch.StalenessMin, batch.StalenessMax, batch.StalenessMean, batch.Samples));
    }

    [Fact]
    public async Task Should_summarise_the_run_in_distributions()
    {
        var staleness = (await LedgerAsync()).Staleness();

        Assert.Equal(new Dictionary<int, int> { [0] = 2, [1] = 2 }, staleness.LagHistogram);
        Assert.Equal(new Dictionary<int, int> { [1] = 4 }, staleness.ReuseHistogram);
        Assert.Equal((0, 0.5, 1), (staleness.LagMin, staleness.LagMean, staleness.LagMax));
        var ratios = staleness.ImportanceRatio!;
        Assert.Equal((4, 0.5, 1.0, 2.0), (ratios.Count, ratios.Min, ratios.Median, ratios.Max));
        Assert.Equal(0.5 + 0.05 * 3 * 0.5, ratios.P05, 12);                                // between the two lowest, 15% of the way
    }

    [Fact]
    public async Task Should_trace_a_published_version_to_its_steps_and_no_other()
    {
        var ledger = await LedgerAsync();

        var lineage = ledger.LineageOf(2)!;
        Assert.Equal([1, 2], lineage.Updates.Select(u => u.Step));
        Assert.Equal(_ids, lineage.Updates.SelectMany(u => u.SampleIds));
        Assert.Equal(2, lineage.Checkpoint.Version);
        Assert.Empty(ledger.LineageOf(0)!.Updates);
        Assert.Null(ledger.LineageOf(1));                                                  // never published
    }

    [Fact]
    public async Task Should_write_nothing_while_the_run_runs()
    {
        await LedgerAsync();

        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var tables = new NpgsqlCommand(
            "select count(*) from information_schema.tables where table_schema = @schema and table_name like '%ledger%'", connection);
        tables.Parameters.AddWithValue("schema", _schema);
        Assert.Equal(0L, await tables.ExecuteScalarAsync());
    }

    private async Task<RunLedger> LedgerAsync()
    {
        await using var session = _store.QuerySession();
        return (await session.Events.AggregateStreamAsync<RunLedger>(_runId))!;
    }

    private RolloutsGenerated Generated(RolloutPurpose purpose, IReadOnlyList<Guid> ids) => new()
    {
        RunId = _runId, BatchId = Guid.NewGuid(), Purpose = purpose, Iteration = 0, PolicyVersion = 0,
        Rollouts = ids.Select((id, i) => new Rollout
        {
            SampleId = id, PromptId = "p0", Group = 0, PromptTokens = [0], ResponseTokens = [i], TokenLogProbs = [-1.5f], PolicyVersion = 0,
        }).ToList(),
    };

    private UpdateApplied Update(Guid batch, int step, IReadOnlyList<Guid> ids, IReadOnlyList<double> logRatios) => new()
    {
        RunId = _runId, BatchId = batch, Step = step, Pass = 0, Minibatch = step - 1, VersionBefore = step - 1, VersionAfter = step,
        SampleIds = ids, Loss = 0.5, LogRatios = logRatios,
    };

    private static CheckpointRef Checkpoint(int version) =>
        new() { Version = version, Sha256 = new string('b', 64), Uri = $"pg://sha256/{new string('b', 64)}", Bytes = 10 };
}

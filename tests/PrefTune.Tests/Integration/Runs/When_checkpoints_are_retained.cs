using System.Text.Json;
using Npgsql;
using PrefTune.Learner;
using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.Orchestrator.Runs;
using PrefTune.Storage.Checkpoints;
using PrefTune.Tests.Integration.Cli;
using PrefTune.Tests.Integration.Pipeline;
using PrefTune.Tests.Integration.Servers;
using PrefTune.Training;
using Xunit;

namespace PrefTune.Tests.Integration.Runs;

/// <summary>
/// checkpoint_every: full checkpoints are kept every N steps and at the end, every version's hash is still recorded, and
/// the versions between leave nothing behind. `preftune prune` removes what no run needs, and replay and resume still
/// work afterwards, resume re-training from the last kept checkpoint when the last one is gone.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class When_checkpoints_are_retained(PostgresServer postgres)
{
    [Fact]
    public async Task The_kept_versions_are_0_each_crossed_multiple_of_checkpoint_every_and_the_end()
    {
        // B = 20, M = 10: two gradient steps per batch, versions 2, 4, ..., 12; multiples of 5 are crossed at 6 and 10.
        var spec = TinyRuns.Bandit("reinforce", DataSource.Online, steps: 12);
        spec = spec with { Loop = spec.Loop with { CheckpointEvery = 5 } };
        var options = RunsUnderTest.Options(postgres);
        await using var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var outcome = await session.RunAsync(spec, null, CancellationToken.None);
        var recorded = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;

        Assert.Equal("completed", outcome.Status);
        Assert.Equal([0, 2, 4, 6, 8, 10, 12], recorded.Checkpoints.Select(c => c.Version));   // every hash recorded
        Assert.Equal([0, 6, 10, 12], CheckpointRetention.Kept(recorded).Select(c => c.Version));
        var stored = await ListAsync(options.Schema);
        Assert.DoesNotContain(stored, c => c.TransientFor is not null);                    // nothing transient left behind
        var expected = recorded.Checkpoints.Where(c => c.Version is 0 or 6 or 10 or 12)
            .SelectMany(c => new[] { c.Sha256, c.TrainerState?.Sha256 }).OfType<string>().Order();
        Assert.Equal(expected, stored.Select(c => c.Sha256).Order());
    }

    [Fact]
    public async Task Prune_frees_most_bytes_keeps_an_unfinished_runs_last_checkpoint_and_replay_and_resume_still_succeed()
    {
        var spec = RunsUnderTest.OneStepPerBatch(steps: 20);
        spec = spec with { Loop = spec.Loop with { CheckpointEvery = 8 } };
        var options = RunsUnderTest.Options(postgres);
        using var checkpoints = new PostgresCheckpointStore(postgres.ConnectionString, options.Schema);

        Guid completed, interrupted;
        await using (var first = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None))
        {
            completed = (await first.RunAsync(spec, null, CancellationToken.None)).RunId;
            interrupted = await RunsUnderTest.InterruptAsync(first, spec, atStep: 10);
        }

        await using var second = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var run = (await RecordedRun.LoadAsync(second.Store, completed, CancellationToken.None))!;
        var stopped = (await RecordedRun.LoadAsync(second.Store, interrupted, CancellationToken.None))!;
        var last = stopped.Checkpoints[^1];
        Assert.InRange(last.Version, 10, 15);   // past the kept version 8, not kept itself
        // The completed run's every version, stored as PrefTune wrote them before retention, a day ago.
        await StoreEveryVersionAsync(run, checkpoints);
        await AgeAsync(options.Schema);
        var before = await ListAsync(options.Schema);
        var diskBefore = (await CheckpointPruning.DiskUsageAsync(options, second.Store, CancellationToken.None))[completed];

        var dry = await PruneAsync(options.Schema, "--dry-run");
        Assert.True(before.ToHashSet().SetEquals(await ListAsync(options.Schema)), "a dry run removed something");
        var pruned = await PruneAsync(options.Schema);
        var after = await ListAsync(options.Schema);

        Assert.Equal(dry.GetProperty("freed_bytes").GetInt64(), pruned.GetProperty("freed_bytes").GetInt64());
        Assert.True(pruned.GetProperty("freed_bytes").GetInt64() > 0.7 * before.Sum(c => c.Bytes),
            $"freed {pruned.GetProperty("freed_bytes")} of {before.Sum(c => c.Bytes)} bytes");
        Assert.Equal(before.Count - after.Count, pruned.GetProperty("removed_blobs").GetInt32());
        var needed = CheckpointRetention.Needed(run).Concat(CheckpointRetention.Needed(stopped)).ToHashSet();
        Assert.Equal(needed.Order(), after.Select(c => c.Sha256).Distinct().Order());
        Assert.True(await checkpoints.ContainsAsync(last.Sha256, CancellationToken.None));
        Assert.True(await checkpoints.ContainsAsync(last.TrainerState!.Sha256, CancellationToken.None));
        Assert.True((await CheckpointPruning.DiskUsageAsync(options, second.Store, CancellationToken.None))[completed] < diskBefore / 2);

        var replay = await second.ReplayExactlyAsync(run, CancellationToken.None);
        Assert.Equal(21, replay.Checkpoints.Count);
        Assert.All(replay.Checkpoints, c => Assert.Equal(c.Recorded, c.Replayed));

        // The last checkpoint gone (a database crash empties the unlogged transient copies; here the completed run's old
        // copy of the same weights goes too): resume re-trains from version 8, the last kept one.
        await checkpoints.DeleteAsync(after.Where(c => c.Sha256 == last.Sha256 || c.Sha256 == last.TrainerState.Sha256).ToList(), CancellationToken.None);
        Assert.False(await checkpoints.ContainsAsync(last.Sha256, CancellationToken.None));
        var resumed = await second.ResumeAsync(stopped, null, CancellationToken.None);
        var continued = (await RecordedRun.LoadAsync(second.Store, interrupted, CancellationToken.None))!;

        Assert.Equal("completed", resumed.Status);
        Assert.Equal(8, Assert.Single(continued.Events.OfType<RunResumed>()).RetrainedFrom);
        Assert.Equal(run.Checkpoints.Select(c => (c.Version, c.Sha256)), continued.Checkpoints.Select(c => (c.Version, c.Sha256)));
        Assert.Empty(RunAudit.Check(continued));
    }

    [Fact]
    public async Task A_run_sampling_2_versions_ahead_resumes_exactly_when_its_transient_copies_are_lost()
    {
        var spec = RunsUnderTest.OneStepPerBatch(steps: 14, maxStaleness: 2);
        spec = spec with { Loop = spec.Loop with { CheckpointEvery = 8 } };
        var options = RunsUnderTest.Options(postgres);
        Guid interrupted;
        await using (var first = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None))
            interrupted = await RunsUnderTest.InterruptAsync(first, spec, atStep: 10);
        using (var checkpoints = new PostgresCheckpointStore(postgres.ConnectionString, options.Schema))
            await checkpoints.DeleteAsync((await checkpoints.ListAsync(CancellationToken.None)).Where(c => c.TransientFor == interrupted).ToList(),
                CancellationToken.None);   // what a database crash does to the unlogged table

        await using var second = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None);
        var stopped = (await RecordedRun.LoadAsync(second.Store, interrupted, CancellationToken.None))!;
        var resumed = await second.ResumeAsync(stopped, null, CancellationToken.None);
        var uninterrupted = await second.RunAsync(spec, null, CancellationToken.None);

        Assert.Equal("completed", resumed.Status);
        var continued = (await RecordedRun.LoadAsync(second.Store, interrupted, CancellationToken.None))!;
        var reference = (await RecordedRun.LoadAsync(second.Store, uninterrupted.RunId, CancellationToken.None))!;
        // the batch after the crash samples from 2 versions back, which is gone too: back to version 8, the last kept one
        Assert.Equal(8, Assert.Single(continued.Events.OfType<RunResumed>()).RetrainedFrom);
        Assert.Equal(reference.Checkpoints.Select(c => (c.Version, c.Sha256)), continued.Checkpoints.Select(c => (c.Version, c.Sha256)));
        Assert.Equal(reference.Evaluations.Select(e => e.MeanGoldReward), continued.Evaluations.Select(e => e.MeanGoldReward));
    }

    [Fact]
    public async Task A_restarted_learner_continues_bit_for_bit_from_the_runs_transient_copy_and_trainer_state()
    {
        var spec = RunsUnderTest.OneStepPerBatch(steps: 6);
        var options = RunsUnderTest.Options(postgres);
        RecordedRun run;
        await using (var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None))
        {
            var outcome = await session.RunAsync(spec, null, CancellationToken.None);
            run = (await RecordedRun.LoadAsync(session.Store, outcome.RunId, CancellationToken.None))!;
        }
        TrainPolicy Batch(int i, CheckpointRef policy, Guid runId) => Algorithm1.TrainRequest(spec, runId, run.Assembled[i].BatchId, i, policy,
            run.Initialized!.Reference, run.SamplesOf(run.Assembled[i]), keepCheckpoint: false);

        // A Learner trains three batches (versions 1-3 are transient copies), then its process dies.
        var runId = Guid.NewGuid();
        using var firstStore = new PostgresCheckpointStore(postgres.ConnectionString, options.Schema);
        CheckpointRef policy;
        using (var first = new Learners(firstStore))
        {
            policy = (await first.InitializeAsync(new InitializePolicy { RunId = runId, Task = spec.Task, Seed = spec.Seed }, CancellationToken.None)).Policy;
            for (var i = 0; i < 3; i++)
                policy = (await first.TrainAsync(Batch(i, policy, runId), CancellationToken.None)).Checkpoint;
        }
        await firstStore.ReleaseTransientAsync(runId, policy.Version, CancellationToken.None);   // superseded ones go
        Assert.Equal([3, 3], (await firstStore.ListAsync(CancellationToken.None)).Where(c => c.TransientFor == runId).Select(c => c.Version!.Value));

        // Its replacement knows nothing of the run: it rebuilds from the transient weights and trainer state of version 3.
        using var secondStore = new PostgresCheckpointStore(postgres.ConnectionString, options.Schema);
        using var second = new Learners(secondStore);
        var next = await second.TrainAsync(Batch(3, policy, runId), CancellationToken.None);

        Assert.Equal(run.Trained[run.Assembled[3].BatchId].Checkpoint.Sha256, next.Checkpoint.Sha256);
    }

    /// <summary>What the Learner stored before retention: weights and trainer state of every version, kept. Re-derived
    /// here from the recorded batches, so the hashes are the recorded ones.</summary>
    private static async Task StoreEveryVersionAsync(RecordedRun run, ICheckpointStore store)
    {
        var spec = run.Started.Spec;
        await TorchRuntime.Work.WaitAsync();
        try
        {
            TorchRuntime.UseThreads(spec.TorchThreads);
            var (learner, weights, _) = RunLearner.Initialize(spec.Task, spec.Seed);
            using var _ = learner;
            var reference = await store.PutAsync(0, weights, CancellationToken.None);
            var policy = reference;
            foreach (var batch in run.Assembled)
            {
                learner.Train(Algorithm1.TrainRequest(spec, run.Started.RunId, batch.BatchId, batch.Iteration, policy, reference,
                    run.SamplesOf(batch), keepCheckpoint: false));
                policy = await store.PutAsync(learner.Version, learner.SaveWeights(), CancellationToken.None);
                await store.PutAsync(learner.Version, learner.SaveTrainerState()!, CancellationToken.None);
                Assert.Equal(run.Trained[batch.BatchId].Checkpoint.Sha256, policy.Sha256);
            }
        }
        finally
        {
            TorchRuntime.Work.Release();
        }
    }

    private async Task AgeAsync(string schema)
    {
        await using var connection = new NpgsqlConnection(postgres.ConnectionString);
        await connection.OpenAsync();
        await using var update = new NpgsqlCommand($"update {schema}.checkpoints set created_at = now() - interval '1 day'", connection);
        await update.ExecuteNonQueryAsync();
    }

    private async Task<List<StoredCheckpoint>> ListAsync(string schema)
    {
        using var store = new PostgresCheckpointStore(postgres.ConnectionString, schema);
        return [.. await store.ListAsync(CancellationToken.None)];
    }

    private async Task<JsonElement> PruneAsync(string schema, params string[] flags)
    {
        var (exitCode, output, error) = await PrefTuneProcess.RunAsync(postgres.ConnectionString, schema, ["prune", "--json", .. flags]);
        Assert.True(exitCode == 0, error);
        return JsonDocument.Parse(output).RootElement.Clone();
    }
}

using System.Diagnostics;
using Npgsql;
using PrefTune.Learner;
using PrefTune.Storage.Checkpoints;
using PrefTune.Training;
using PrefTune.Training.Methods;
using PrefTune.Training.Policies;
using Spectre.Console;
using static TorchSharp.torch;

namespace PrefTune.Orchestrator.Bench;

/// <summary>
/// `preftune bench --checkpoint-io`: write and read MB/s of a ~30M-parameter language model's checkpoint through the
/// directory store and the PostgreSQL store, as the Learner and the Sampler do it: the weights streamed from the model
/// into the store and back into a model, then the same with Adam's state (two moments per weight, through
/// <see cref="TrainerState"/>) beside them. Each store starts empty for every repetition (a put of content already
/// stored is not a write); the best of <see cref="Repetitions"/> is shown (the machine may be shared). Prints, asserts nothing.
/// </summary>
public static class CheckpointBench
{
    public const int Repetitions = 2;

    public static async Task RunAsync(string database, CancellationToken ct)
    {
        using var model = LanguageModelBench.Random(LanguageModelBench.Llama30M);
        using var policy = new LanguageModelPolicy(model);
        using var target = new LanguageModelPolicy(LanguageModelBench.Random(LanguageModelBench.Llama30M));
        var parameters = policy.parameters().Sum(p => p.numel());
        using var adam = optim.Adam(policy.parameters(), 1e-4);
        TakeOneStep(policy, adam);
        var descriptor = MethodRegistry.Get("dpo");
        var loss = descriptor.Create(new Dictionary<string, double>(descriptor.Defaults));
        using var restoredAdam = optim.Adam(target.parameters(), 1e-4);

        var table = new Table().AddColumns("store", "checkpoint", "MB", "write MB/s", "read MB/s");
        table.Title = new TableTitle($"~30M Llama (random, {parameters / 1e6:0.0}M parameters, fp32): streamed from the model into the store and "
            + $"back into a model; best of {Repetitions}, each into an empty store");
        foreach (var (name, open) in Stores(database))
        {
            foreach (var withState in new[] { false, true })
            {
                var (bytes, write, read) = (0L, TimeSpan.MaxValue, TimeSpan.MaxValue);
                for (var repetition = 0; repetition < Repetitions; repetition++)
                {
                    await using var store = await open(ct);
                    var clock = Stopwatch.StartNew();
                    var weights = await store.Store.PutAsync(1, policy.WriteWeightsAsync, ct);
                    var state = withState
                        ? await store.Store.PutAsync(1, (stream, _) => { TrainerState.Save(stream, "dpo", adam, loss); return Task.CompletedTask; }, ct)
                        : null;
                    write = Min(write, clock.Elapsed);
                    clock.Restart();
                    await store.Store.ReadAsync(weights, target.LoadWeights, ct);
                    if (state is not null)
                        await store.Store.ReadAsync(state, stream =>
                        {
                            using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
                            TrainerState.ReadMethod(reader);
                            TrainerState.ApplyTo(reader, restoredAdam, loss);
                        }, ct);
                    read = Min(read, clock.Elapsed);
                    bytes = weights.Bytes + (state?.Bytes ?? 0);
                }
                table.AddRow(name, withState ? "weights + Adam state" : "weights", $"{bytes / 1e6:0}",
                    $"{bytes / 1e6 / write.TotalSeconds:0}", $"{bytes / 1e6 / read.TotalSeconds:0}");
            }
        }
        AnsiConsole.Write(table);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>One Adam step on a trivial loss, so that both moments exist for every parameter (what a checkpoint after
    /// the first step holds).</summary>
    private static void TakeOneStep(PolicyModel policy, optim.Optimizer adam)
    {
        using var scope = NewDisposeScope();
        adam.zero_grad();
        var loss = policy.parameters().Select(p => p.square().sum()).Aggregate((a, b) => a + b);
        loss.backward();
        adam.step();
    }

    /// <summary>A fresh directory under the temporary folder, and a fresh schema of the bench's database; each removed after
    /// its repetition (both made here, holding nothing but the bench's bytes).</summary>
    private static IEnumerable<(string Name, Func<CancellationToken, Task<BenchStore>> Open)> Stores(string database)
    {
        yield return ("directory", _ =>
        {
            var folder = Directory.CreateTempSubdirectory("preftune-bench-ckpt-");
            return Task.FromResult(new BenchStore(new DirectoryCheckpointStore(folder.FullName), () =>
            {
                folder.Delete(recursive: true);
                return Task.CompletedTask;
            }));
        });
        yield return ("postgres", _ =>
        {
            var schema = $"bench_ckpt_{Guid.NewGuid():N}";
            var store = new PostgresCheckpointStore(database, schema);
            return Task.FromResult(new BenchStore(store, async () =>
            {
                await store.DisposeAsync();
                await using var connection = new NpgsqlConnection(database);
                await connection.OpenAsync();
                await using var drop = new NpgsqlCommand($"drop schema if exists {schema} cascade", connection);
                await drop.ExecuteNonQueryAsync();
            }));
        });
    }

    private sealed class BenchStore(ICheckpointStore store, Func<Task> remove) : IAsyncDisposable
    {
        public ICheckpointStore Store { get; } = store;
        public ValueTask DisposeAsync() => new(remove());
    }
}

using Xunit;
using PrefTune.Learner;
using PrefTune.Messages;
using PrefTune.Training.Methods;
using PrefTune.Training.Tasks;
using TorchSharp;

namespace PrefTune.Tests.Unit.Learner;

/// <summary>
/// A Learner that dies between batches is rebuilt from the last checkpoint. With the trainer state saved beside
/// the weights (Adam's moments and step, REINFORCE's running baseline) it must continue bit for bit; without
/// it, Adam restarts and the weights drift.
/// </summary>
public class When_a_learner_is_restored_mid_run
{
    private static readonly TaskSpec Task = new() { Kind = "bandit", Bandit = new BanditSpec { Prompts = 4, Hidden = 16, ReferenceSteps = 10 } };
    private static readonly LoopSpec Loop = new() { B = 20, C = 10, M = 10, T = 2, LearningRate = 0.01 };

    [Theory]
    [InlineData("reinforce")]
    [InlineData("dpo")]
    public void Restoring_with_the_trainer_state_continues_exactly_and_without_it_does_not(string method)
    {
        var (first, weights, _) = RunLearner.Initialize(Task, seed: 5);
        using var _ = first;
        var reference = Ref(0, weights);
        var batches = Enumerable.Range(0, 3).Select(i => Batch(first, weights, i)).ToList();

        first.Train(Command(method, batches[0], reference, reference, 0));
        var afterOne = first.SaveWeights();
        var state = first.SaveTrainerState();
        Assert.NotNull(state);
        var checkpoint = Ref(first.Version, afterOne);
        first.Train(Command(method, batches[1], checkpoint, reference, 1));
        first.Train(Command(method, batches[2], checkpoint, reference, 2));
        var uninterrupted = first.PolicyHashAfterSave();

        using var restored = Restore(checkpoint, afterOne, reference, weights, state, Command(method, batches[1], checkpoint, reference, 1));
        restored.Train(Command(method, batches[1], checkpoint, reference, 1));
        restored.Train(Command(method, batches[2], checkpoint, reference, 2));
        Assert.Equal(uninterrupted, restored.PolicyHashAfterSave());

        using var fresh = Restore(checkpoint, afterOne, reference, weights);
        fresh.Train(Command(method, batches[1], checkpoint, reference, 1));
        fresh.Train(Command(method, batches[2], checkpoint, reference, 2));
        Assert.NotEqual(uninterrupted, fresh.PolicyHashAfterSave());
    }

    [Theory]
    [InlineData("reinforce")]
    [InlineData("dpo")]
    public void A_streamed_trainer_state_has_the_bytes_earlier_versions_wrote(string method)
    {
        using var scope = torch.NewDisposeScope();
        var weight = new TorchSharp.Modules.Parameter(torch.randn(3, 4, generator: new torch.Generator(7)));
        using var adam = torch.optim.Adam([weight], 0.01);
        weight.square().sum().backward();
        adam.step();
        var descriptor = MethodRegistry.Get(method);
        var loss = descriptor.Create(new Dictionary<string, double>(descriptor.Defaults));
        (loss as IStatefulLoss)?.LoadState(new Dictionary<string, double> { ["baseline"] = 0.25, ["batches"] = 3 });

        // the format as it was written before streaming: the optimizer's bytes buffered apart, their count before them
        using var earlier = new MemoryStream();
        using (var writer = new BinaryWriter(earlier, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write("preftune-trainer-state/1");
            writer.Write(method);
            using var optimizer = new MemoryStream();
            using (var optimizerWriter = new BinaryWriter(optimizer, System.Text.Encoding.UTF8, leaveOpen: true))
                ((TorchSharp.Modules.OptimizerHelper)adam).save_state_dict(optimizerWriter);
            writer.Write(optimizer.Length);
            writer.Write(optimizer.ToArray());
            var state = (loss as IStatefulLoss)?.SaveState() ?? new Dictionary<string, double>();
            writer.Write(state.Count);
            foreach (var (name, value) in state.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                writer.Write(name);
                writer.Write(value);
            }
        }

        Assert.Equal(earlier.ToArray(), TrainerState.Save(method, adam, loss));   // so recorded trainer-state hashes still match
    }

    [Fact]
    public void A_trainer_state_of_another_format_is_refused_with_its_name()
    {
        var error = Assert.Throws<InvalidDataException>(() =>
            TrainerState.ReadMethod(new BinaryReader(new MemoryStream(new byte[] { 3, (byte)'a', (byte)'b', (byte)'c', 0, 0 }))));
        Assert.Contains("trainer state", error.Message);
    }

    /// <summary>What a restarted Learner does with the streams of its checkpoints.</summary>
    private static RunLearner Restore(CheckpointRef policy, byte[] policyWeights, CheckpointRef reference, byte[] referenceWeights,
        byte[]? state = null, TrainPolicy? next = null)
    {
        var learner = RunLearner.Restore(Task, policy, reference);
        learner.LoadPolicy(new MemoryStream(policyWeights));
        learner.LoadReference(new MemoryStream(referenceWeights));
        if (state is not null) learner.LoadTrainerState(new MemoryStream(state), next!);
        return learner;
    }

    private static CheckpointRef Ref(int version, byte[] weights) => new()
    {
        Version = version, Sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(weights)), Uri = "memory://", Bytes = weights.Length,
    };

    /// <summary>Two prompt groups of ten responses sampled from the reference, scored by the gold reward.</summary>
    private static IReadOnlyList<TrainingSample> Batch(RunLearner learner, byte[] weights, int index)
    {
        var task = PreferenceTasks.Create(Task);
        using var policy = task.CreatePolicy(0);
        policy.LoadWeights(weights);
        var prompts = task.PromptPool(5).Take(2).ToList();
        return task.Generate(policy, prompts, 10, 1.0, seed: 100 + index, policyVersion: 0, Guid.NewGuid())
            .Select(r => new TrainingSample { Rollout = r, Reward = task.GoldReward(r) }).ToList();
    }

    private static TrainPolicy Command(string method, IReadOnlyList<TrainingSample> samples, CheckpointRef policy, CheckpointRef reference, int iteration) => new()
    {
        RunId = Guid.Empty, BatchId = Guid.NewGuid(), Iteration = iteration, Task = Task, Method = new MethodSpec { Name = method },
        Loop = Loop, Policy = policy, Reference = reference, Samples = samples, Seed = 11 + iteration,
    };
}

internal static class RunLearnerTestExtensions
{
    public static string PolicyHashAfterSave(this RunLearner learner)
    {
        learner.SaveWeights();
        return learner.PolicyHash;
    }
}

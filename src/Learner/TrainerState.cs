using PrefTune.Training.Methods;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Learner;

/// <summary>
/// What a Learner holds besides the weights: the method it trains, the optimizer's state (Adam's moments and
/// step count, in TorchSharp's format) and a stateful loss's own numbers. Saved next to every checkpoint so a
/// restarted Learner, a resumed run and a replay continue bit for bit.
/// </summary>
public sealed record TrainerState(string Method, byte[] Optimizer, IReadOnlyDictionary<string, double> Loss)
{
    private const string Format = "preftune-trainer-state/1";

    public static byte[] Save(string method, optim.Optimizer optimizer, IPreferenceLoss loss)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Format);
            writer.Write(method);
            using var optimizerBytes = new MemoryStream();
            using (var optimizerWriter = new BinaryWriter(optimizerBytes, System.Text.Encoding.UTF8, leaveOpen: true))
                AsHelper(optimizer).save_state_dict(optimizerWriter);
            writer.Write(optimizerBytes.Length);
            writer.Write(optimizerBytes.ToArray());
            var lossState = (loss as IStatefulLoss)?.SaveState() ?? new Dictionary<string, double>();
            writer.Write(lossState.Count);
            foreach (var (name, value) in lossState.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                writer.Write(name);
                writer.Write(value);
            }
        }
        return stream.ToArray();
    }

    public static TrainerState Read(byte[] bytes)
    {
        using var reader = new BinaryReader(new MemoryStream(bytes, writable: false));
        var format = reader.ReadString();
        if (format != Format)
            throw new InvalidDataException($"trainer state: format '{format}', expected '{Format}'");
        var method = reader.ReadString();
        var optimizer = reader.ReadBytes(checked((int)reader.ReadInt64()));
        var count = reader.ReadInt32();
        var loss = new Dictionary<string, double>();
        for (var i = 0; i < count; i++)
            loss[reader.ReadString()] = reader.ReadDouble();
        return new TrainerState(method, optimizer, loss);
    }

    /// <summary>Loads this state into a freshly built optimizer and loss of the same method.</summary>
    public void ApplyTo(optim.Optimizer optimizer, IPreferenceLoss loss)
    {
        using (var reader = new BinaryReader(new MemoryStream(Optimizer, writable: false)))
            AsHelper(optimizer).load_state_dict(reader);
        if (loss is IStatefulLoss stateful && Loss.Count > 0)
            stateful.LoadState(Loss);
    }

    private static OptimizerHelper AsHelper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");
}

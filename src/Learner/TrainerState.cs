using PrefTune.Storage.Checkpoints;
using PrefTune.Training.Methods;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Learner;

/// <summary>
/// What a Learner holds besides the weights: the method it trains, the optimizer's state (Adam's moments and
/// step count, in TorchSharp's format) and a stateful loss's own numbers. Saved next to every checkpoint so a
/// restarted Learner, a resumed run and a replay continue bit for bit. Written and read as a stream: Adam's moments
/// are twice the weights, more than one array holds for a large model.
/// </summary>
public static class TrainerState
{
    private const string Format = "preftune-trainer-state/1";

    /// <summary>Writes the state to <paramref name="destination"/> (left open). The format has the optimizer's byte count
    /// before its bytes (checkpoints of earlier runs must keep their bytes and hashes), so a counting pass that keeps no
    /// bytes measures it first.</summary>
    public static void Save(Stream destination, string method, optim.Optimizer optimizer, IPreferenceLoss loss)
    {
        using var writer = new BinaryWriter(destination, System.Text.Encoding.UTF8, leaveOpen: true);
        writer.Write(Format);
        writer.Write(method);
        var counter = new CountingStream();
        using (var counting = new BinaryWriter(counter, System.Text.Encoding.UTF8, leaveOpen: true))
            AsHelper(optimizer).save_state_dict(counting);
        writer.Write(counter.Length);
        writer.Flush();
        var before = destination.CanSeek ? destination.Position : -1;
        AsHelper(optimizer).save_state_dict(writer);
        writer.Flush();
        if (before >= 0 && destination.Position - before != counter.Length)
            throw new InvalidOperationException($"trainer state: the optimizer wrote {destination.Position - before} bytes, counted {counter.Length}");
        var lossState = (loss as IStatefulLoss)?.SaveState() ?? new Dictionary<string, double>();
        writer.Write(lossState.Count);
        foreach (var (name, value) in lossState.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            writer.Write(name);
            writer.Write(value);
        }
    }

    /// <summary><see cref="Save(Stream, string, optim.Optimizer, IPreferenceLoss)"/> as one array, for small models (tests).</summary>
    public static byte[] Save(string method, optim.Optimizer optimizer, IPreferenceLoss loss)
    {
        using var stream = new MemoryStream();
        Save(stream, method, optimizer, loss);
        return stream.ToArray();
    }

    /// <summary>Reads the method a state was saved for, leaving <paramref name="reader"/> at the optimizer's part.</summary>
    /// <exception cref="InvalidDataException">Not a trainer state of this format.</exception>
    public static string ReadMethod(BinaryReader reader)
    {
        var format = reader.ReadString();
        if (format != Format)
            throw new InvalidDataException($"trainer state: format '{format}', expected '{Format}'");
        return reader.ReadString();
    }

    /// <summary>Loads the rest of a state (after <see cref="ReadMethod"/>) into a freshly built optimizer and loss of its method.</summary>
    public static void ApplyTo(BinaryReader reader, optim.Optimizer optimizer, IPreferenceLoss loss)
    {
        var length = reader.ReadInt64();
        var start = reader.BaseStream.CanSeek ? reader.BaseStream.Position : -1;
        AsHelper(optimizer).load_state_dict(reader);
        if (start >= 0 && reader.BaseStream.Position - start != length)
            throw new InvalidDataException($"trainer state: the optimizer read {reader.BaseStream.Position - start} bytes, its length says {length}");
        var count = reader.ReadInt32();
        var state = new Dictionary<string, double>();
        for (var i = 0; i < count; i++)
            state[reader.ReadString()] = reader.ReadDouble();
        if (loss is IStatefulLoss stateful && state.Count > 0)
            stateful.LoadState(state);
    }

    private static OptimizerHelper AsHelper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");

    /// <summary>Counts what is written and keeps nothing.</summary>
    private sealed class CountingStream : WriteOnlyStream
    {
        private long _length;
        public override long Length => _length;
        public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
    }
}

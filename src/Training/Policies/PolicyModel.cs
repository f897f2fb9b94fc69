using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.Policies;

/// <summary>
/// Base of every policy network: a TorchSharp module whose weights serialize to deterministic bytes,
/// so that a checkpoint's SHA-256 names its weights.
/// </summary>
public abstract class PolicyModel : nn.Module
{
    protected PolicyModel(string name) : base(name) { }

    /// <summary>The device the weights live on (every input and batch tensor goes there); CPU for a module without parameters.</summary>
    public Device Device
    {
        get
        {
            using var scope = NewDisposeScope();   // reading a parameter makes a handle that would outlive a caller without a scope
            return parameters().FirstOrDefault()?.device ?? CPU;
        }
    }

    /// <summary>Serializes the weights (TorchSharp's state-dict format) to <paramref name="destination"/> (left open), tensor
    /// by tensor: nothing of the size of the model is buffered. Equal weights give equal bytes.</summary>
    public virtual void SaveWeights(Stream destination)
    {
        using var writer = new BinaryWriter(destination, System.Text.Encoding.UTF8, leaveOpen: true);
        save(writer);
    }

    /// <summary><see cref="SaveWeights(Stream)"/> as one array, for small models (tests, tools).</summary>
    public byte[] SaveWeights()
    {
        using var stream = new MemoryStream();
        SaveWeights(stream);
        return stream.ToArray();
    }

    /// <summary>A checkpoint store's writer for these weights (see <c>ICheckpointStore.PutAsync</c>).</summary>
    public Task WriteWeightsAsync(Stream destination, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        SaveWeights(destination);
        return Task.CompletedTask;
    }

    /// <summary>Copies <paramref name="other"/>'s (same-shaped) weights and buffers into this module, in memory: what
    /// <see cref="LoadWeights(Stream)"/> of its saved bytes would give, without serializing them.</summary>
    public void CopyWeightsFrom(PolicyModel other)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var source = other.state_dict();
        foreach (var (name, target) in state_dict())
            target.copy_(source.TryGetValue(name, out var value) ? value
                : throw new ArgumentException($"weights: {other.GetType().Name} has no tensor {name}", nameof(other)));
    }

    /// <summary>Sets requires_grad on every parameter (freezing a reference: requires_grad_(false)); returns this module.</summary>
    public PolicyModel requires_grad_(bool requiresGrad = true)
    {
        foreach (var parameter in parameters())
            parameter.requires_grad_(requiresGrad);
        return this;
    }

    /// <summary>Loads weights written by <see cref="SaveWeights(Stream)"/> from <paramref name="source"/> (left open) into
    /// this (same-shaped) module, tensor by tensor.</summary>
    public virtual void LoadWeights(Stream source)
    {
        using var reader = new BinaryReader(source, System.Text.Encoding.UTF8, leaveOpen: true);
        load(reader);
    }

    /// <summary><see cref="LoadWeights(Stream)"/> from one array.</summary>
    public void LoadWeights(byte[] weights)
    {
        using var stream = new MemoryStream(weights, writable: false);
        LoadWeights(stream);
    }
}

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

    /// <summary>Serializes the weights (TorchSharp's state-dict format). Equal weights give equal bytes.</summary>
    public virtual byte[] SaveWeights()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            save(writer);
        return stream.ToArray();
    }

    /// <summary>Sets requires_grad on every parameter (freezing a reference: requires_grad_(false)); returns this module.</summary>
    public PolicyModel requires_grad_(bool requiresGrad = true)
    {
        foreach (var parameter in parameters())
            parameter.requires_grad_(requiresGrad);
        return this;
    }

    /// <summary>Loads weights written by <see cref="SaveWeights"/> into this (same-shaped) module.</summary>
    public virtual void LoadWeights(byte[] weights)
    {
        using var stream = new MemoryStream(weights, writable: false);
        using var reader = new BinaryReader(stream);
        load(reader);
    }
}

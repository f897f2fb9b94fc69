using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>Serialized weights by content: the reference carries the lower-case hex SHA-256 of the bytes.</summary>
public interface ICheckpointStore
{
    /// <summary>Stores <paramref name="bytes"/> (once per distinct content) and returns where to find them.</summary>
    Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken);

    /// <summary>The bytes of <paramref name="reference"/>, verified against its hash; a <see cref="CheckpointStoreException"/> naming the Uri otherwise.</summary>
    Task<byte[]> GetAsync(CheckpointRef reference, CancellationToken cancellationToken);

    /// <summary>Stores <paramref name="bytes"/> as <paramref name="runId"/>'s transient copy of a version that is not kept:
    /// readable by hash like any other until <see cref="ReleaseTransientAsync"/> removes it. Each run has copies of its own,
    /// so releasing them never touches what another run keeps. A store without retention keeps it for good.</summary>
    Task<CheckpointRef> PutTransientAsync(Guid runId, int version, byte[] bytes, CancellationToken cancellationToken) =>
        PutAsync(version, bytes, cancellationToken);

    /// <summary>Removes <paramref name="runId"/>'s transient copies of versions below <paramref name="belowVersion"/>
    /// (int.MaxValue: all of them).</summary>
    Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Whether the bytes of <paramref name="sha256"/> can be read (kept, or someone's transient copy).</summary>
    Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken);
}

/// <summary>One stored copy of a checkpoint: kept (<see cref="TransientFor"/> null) or a run's transient copy.</summary>
public sealed record StoredCheckpoint(string Sha256, long Bytes, Guid? TransientFor, int? Version, DateTimeOffset CreatedAt);

/// <summary>What a store holds, for `preftune prune` and `preftune runs`.</summary>
public interface ICheckpointInventory
{
    Task<IReadOnlyList<StoredCheckpoint>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Removes exactly these copies, then gives the freed space back to the file system where the store can.</summary>
    Task DeleteAsync(IReadOnlyCollection<StoredCheckpoint> copies, CancellationToken cancellationToken);
}

/// <summary>A checkpoint is absent, damaged, or its store did not answer in time.</summary>
public sealed class CheckpointStoreException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

internal static class CheckpointHash
{
    public static string Of(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));

    /// <summary>Rejects anything that is not 64 lower-case hex digits (it would also be unsafe in a file name).</summary>
    public static string Validate(CheckpointRef reference)
    {
        var hash = reference.Sha256;
        if (hash is not { Length: 64 } || !hash.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: '{hash}' is not a lower-case hex SHA-256");
        return hash;
    }

    public static byte[] Verify(CheckpointRef reference, byte[] bytes)
    {
        var actual = Of(bytes);
        if (actual != reference.Sha256)
            throw new CheckpointStoreException(
                $"checkpoint {reference.Uri} is corrupt: its {bytes.Length} bytes hash to {actual}, expected {reference.Sha256}");
        return bytes;
    }
}

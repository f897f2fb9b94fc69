using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>Serialized weights by content: the reference carries the lower-case hex SHA-256 of the bytes.</summary>
public interface ICheckpointStore
{
    /// <summary>Stores <paramref name="bytes"/> (once per distinct content) and returns where to find them.</summary>
    Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken);

    /// <summary>The bytes of <paramref name="reference"/>, verified against its hash; a <see cref="CheckpointStoreException"/> naming the Uri otherwise.</summary>
    Task<byte[]> GetAsync(CheckpointRef reference, CancellationToken cancellationToken);
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

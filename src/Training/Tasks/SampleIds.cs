using System.Security.Cryptography;

namespace PrefTune.Training.Tasks;

/// <summary>Sample ids every policy family gives its rollouts: the same batch and index always name the same sample, so a
/// re-sampled batch (a redelivered request, a replay) is recognised as the one recorded.</summary>
public static class SampleIds
{
    /// <summary>A deterministic sample id: the first 16 bytes of SHA-256(batchId, index), marked RFC 9562 version 8.</summary>
    public static Guid Of(Guid batchId, int index)
    {
        Span<byte> input = stackalloc byte[20];
        batchId.TryWriteBytes(input[..16], bigEndian: true, out _);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(input[16..], index);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80);   // version 8 (custom)
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);   // RFC 9562 variant
        return new Guid(hash[..16], bigEndian: true);
    }
}

using System.Diagnostics;
using System.Security.Cryptography;
using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using Xunit;
using Xunit.Abstractions;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>Content written and read in pieces, as the streamed store API sees it: seeded random blocks, regenerated to
/// compare what comes back without holding the whole checkpoint.</summary>
internal static class StreamedContent
{
    public const int Block = 8 * 1024 * 1024;

    public static Func<Stream, CancellationToken, Task> Writer(long length, int seed, IncrementalHash? hash = null) => async (stream, ct) =>
    {
        var random = new Random(seed);
        var block = new byte[Block];
        for (var left = length; left > 0; left -= block.Length)
        {
            var part = block.AsMemory(0, (int)Math.Min(left, block.Length));
            random.NextBytes(part.Span);
            hash?.AppendData(part.Span);
            await stream.WriteAsync(part, ct);
        }
    };

    /// <summary>Puts <paramref name="length"/> seeded bytes, checks the reference's hash (against one computed apart) and
    /// length, reads them back to the end and compares; writes the MB/s to <paramref name="output"/>.</summary>
    public static async Task<CheckpointRef> RoundTripAsync(ICheckpointStore store, long length, int seed, ITestOutputHelper output)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var clock = Stopwatch.StartNew();
        var reference = await store.PutAsync(9, Writer(length, seed, hash), CancellationToken.None);
        var put = clock.Elapsed;
        Assert.Equal(Convert.ToHexStringLower(hash.GetCurrentHash()), reference.Sha256);
        Assert.Equal(length, reference.Bytes);
        Assert.Equal(9, reference.Version);
        clock.Restart();
        await using (var stream = await store.OpenReadAsync(reference, CancellationToken.None))
            await AssertEqualAsync(stream, length, seed);
        output.WriteLine($"{store.GetType().Name}, {length / 1e6:0} MB: put {length / 1e6 / put.TotalSeconds:0} MB/s, "
            + $"read and verified {length / 1e6 / clock.Elapsed.TotalSeconds:0} MB/s");
        return reference;
    }

    /// <summary>Reads <paramref name="stream"/> to its end (so the store verifies it) and compares it with the seeded content.</summary>
    public static async Task AssertEqualAsync(Stream stream, long length, int seed)
    {
        var random = new Random(seed);
        var (expected, actual) = (new byte[Block], new byte[Block]);
        var offset = 0L;
        while (true)
        {
            var read = await stream.ReadAtLeastAsync(actual, actual.Length, throwOnEndOfStream: false);
            if (read == 0) break;
            random.NextBytes(expected.AsSpan(0, (int)Math.Min(length - offset, expected.Length)));
            Assert.True(actual.AsSpan(0, read).SequenceEqual(expected.AsSpan(0, read)), $"bytes differ in the block at {offset}");
            offset += read;
        }
        Assert.Equal(length, offset);
    }
}

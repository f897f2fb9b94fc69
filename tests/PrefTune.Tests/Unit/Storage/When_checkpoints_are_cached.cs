using PrefTune.Messages;
using PrefTune.Storage.Checkpoints;
using Xunit;

namespace PrefTune.Tests.Unit.Storage;

public sealed class When_checkpoints_are_cached
{
    /// <summary>An in-memory store that counts how often it is read.</summary>
    private sealed class CountingStore : ICheckpointStore
    {
        private readonly Dictionary<string, byte[]> _stored = [];
        public int Gets { get; private set; }

        public async Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
        {
            using var buffer = new MemoryStream();
            await write(buffer, cancellationToken);
            var bytes = buffer.ToArray();
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
            _stored[hash] = bytes;
            return new CheckpointRef { Version = version, Sha256 = hash, Uri = "memory://" + hash, Bytes = bytes.Length };
        }

        public Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken)
        {
            Gets++;
            return Task.FromResult<Stream>(new MemoryStream(_stored[reference.Sha256]));
        }

        public Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken) => Task.FromResult(_stored.ContainsKey(sha256));
    }

    [Fact]
    public async Task A_checkpoint_just_put_is_read_from_memory()
    {
        var inner = new CountingStore();
        var cache = new CachingCheckpointStore(inner);

        var reference = await cache.PutAsync(3, [1, 2, 3], CancellationToken.None);
        var bytes = await cache.GetAsync(reference, CancellationToken.None);

        Assert.Equal([1, 2, 3], bytes);
        Assert.Equal(0, inner.Gets);
    }

    [Fact]
    public async Task The_oldest_checkpoints_are_dropped_past_the_byte_budget()
    {
        var inner = new CountingStore();
        var cache = new CachingCheckpointStore(inner, maxBytes: 8);

        var first = await cache.PutAsync(1, [1, 1, 1, 1, 1], CancellationToken.None);
        var second = await cache.PutAsync(2, [2, 2, 2, 2, 2], CancellationToken.None);
        await cache.GetAsync(second, CancellationToken.None);
        Assert.Equal(0, inner.Gets);

        Assert.Equal([1, 1, 1, 1, 1], await cache.GetAsync(first, CancellationToken.None));
        Assert.Equal(1, inner.Gets);
    }
}

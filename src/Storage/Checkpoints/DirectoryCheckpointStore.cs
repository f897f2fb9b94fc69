using Polly;
using Polly.Timeout;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>Checkpoints as files {hash}.ckpt in one directory (local, or a share every service mounts).</summary>
public sealed class DirectoryCheckpointStore : ICheckpointStore
{
    private readonly ResiliencePipeline _pipeline;

    public DirectoryCheckpointStore(string directory, StorageResilienceOptions? resilience = null)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        _pipeline = (resilience ?? StorageResilienceOptions.Default).BuildPipeline();
    }

    public string Directory { get; }

    public async Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Of(bytes);
        var path = PathOf(hash);
        var reference = new CheckpointRef { Version = version, Sha256 = hash, Uri = UriOf(path), Bytes = bytes.LongLength };
        await RunAsync(reference, async ct =>
        {
            if (File.Exists(path) && new FileInfo(path).Length == bytes.LongLength) return; // same content, already here
            // write beside the target, then rename: a reader never sees a half-written checkpoint
            var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
            try
            {
                await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
                {
                    await file.WriteAsync(bytes, ct);
                    await file.FlushAsync(ct);
                    file.Flush(flushToDisk: true);
                }
                File.Move(temporary, path, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        }, cancellationToken);
        return reference;
    }

    public async Task<byte[]> GetAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        var path = PathOf(CheckpointHash.Validate(reference));
        var bytes = await RunAsync(reference, async ct =>
        {
            try
            {
                return await File.ReadAllBytesAsync(path, ct);
            }
            catch (FileNotFoundException)
            {
                throw new CheckpointStoreException($"checkpoint {reference.Uri} not found: no {path}");
            }
        }, cancellationToken);
        return CheckpointHash.Verify(reference, bytes);
    }

    private string PathOf(string hash) => Path.Combine(Directory, $"{hash}.ckpt");

    private static string UriOf(string fullPath) => $"file://{fullPath}";

    private async Task RunAsync(CheckpointRef reference, Func<CancellationToken, ValueTask> action, CancellationToken ct) =>
        await RunAsync<bool>(reference, async token => { await action(token); return true; }, ct);

    private async Task<T> RunAsync<T>(CheckpointRef reference, Func<CancellationToken, ValueTask<T>> action, CancellationToken ct)
    {
        try
        {
            return await _pipeline.ExecuteAsync(action, ct);
        }
        catch (TimeoutRejectedException e)
        {
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: the store did not answer within {e.Timeout.TotalSeconds:0.#} s", e);
        }
        catch (IOException e)
        {
            throw new CheckpointStoreException($"checkpoint {reference.Uri}: {e.Message}", e);
        }
    }
}

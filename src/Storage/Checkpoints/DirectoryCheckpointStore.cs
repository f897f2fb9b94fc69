using Polly;
using Polly.Timeout;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>Checkpoints as files {hash}.ckpt in one directory (local, or a share every service mounts); a run's
/// transient copies as transient/{run}/{version}.{hash}.ckpt beside them.</summary>
public sealed class DirectoryCheckpointStore : ICheckpointStore, ICheckpointInventory
{
    private readonly ResiliencePipeline _pipeline;

    public DirectoryCheckpointStore(string directory, StorageResilienceOptions? resilience = null)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        _pipeline = (resilience ?? StorageResilienceOptions.Default).BuildPipeline();
    }

    public string Directory { get; }

    public Task<CheckpointRef> PutAsync(int version, byte[] bytes, CancellationToken cancellationToken) =>
        PutAsync(version, bytes, hash => PathOf(hash), cancellationToken);

    public Task<CheckpointRef> PutTransientAsync(Guid runId, int version, byte[] bytes, CancellationToken cancellationToken) =>
        PutAsync(version, bytes, hash => Path.Combine(TransientDirectory(runId), $"{version}.{hash}.ckpt"), cancellationToken);

    private async Task<CheckpointRef> PutAsync(int version, byte[] bytes, Func<string, string> pathOf, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Of(bytes);
        var path = pathOf(hash);
        var reference = new CheckpointRef { Version = version, Sha256 = hash, Uri = UriOf(PathOf(hash)), Bytes = bytes.LongLength };
        await RunAsync(reference, async ct =>
        {
            if (File.Exists(path) && new FileInfo(path).Length == bytes.LongLength) return; // same content, already here
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
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
        var hash = CheckpointHash.Validate(reference);
        var bytes = await RunAsync(reference, async ct =>
        {
            // the kept copy, else any run's transient one (a copy released between finding and opening it: look again)
            for (var attempt = 0; ; attempt++)
            {
                var path = PathsOf(hash).FirstOrDefault()
                    ?? throw new CheckpointStoreException($"checkpoint {reference.Uri} not found: no {PathOf(hash)} "
                        + "(nor a transient copy: only versions kept every checkpoint_every steps stay stored)");
                try
                {
                    return await File.ReadAllBytesAsync(path, ct);
                }
                catch (FileNotFoundException) when (attempt < 3)
                {
                }
            }
        }, cancellationToken);
        return CheckpointHash.Verify(reference, bytes);
    }

    public Task<bool> ContainsAsync(string sha256, CancellationToken cancellationToken) =>
        Task.FromResult(PathsOf(CheckpointHash.Validate(new CheckpointRef { Version = 0, Sha256 = sha256, Uri = sha256, Bytes = 0 })).Any());

    public Task ReleaseTransientAsync(Guid runId, int belowVersion, CancellationToken cancellationToken)
    {
        var directory = TransientDirectory(runId);
        if (!System.IO.Directory.Exists(directory)) return Task.CompletedTask;
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, "*.ckpt"))
            if (TransientVersion(file) is { } version && version < belowVersion)
                File.Delete(file);
        if (!System.IO.Directory.EnumerateFileSystemEntries(directory).Any())
            System.IO.Directory.Delete(directory);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<StoredCheckpoint>> ListAsync(CancellationToken cancellationToken)
    {
        var copies = new List<StoredCheckpoint>();
        foreach (var file in new DirectoryInfo(Directory).EnumerateFiles("*.ckpt"))
            copies.Add(new StoredCheckpoint(Path.GetFileNameWithoutExtension(file.Name), file.Length, null, null, file.LastWriteTimeUtc));
        var transient = new DirectoryInfo(TransientRoot);
        if (transient.Exists)
            foreach (var run in transient.EnumerateDirectories())
                if (Guid.TryParse(run.Name, out var runId))
                    foreach (var file in run.EnumerateFiles("*.ckpt"))
                        if (TransientVersion(file.FullName) is { } version)
                            copies.Add(new StoredCheckpoint(Path.GetFileNameWithoutExtension(file.Name).Split('.')[1], file.Length, runId, version, file.LastWriteTimeUtc));
        return Task.FromResult<IReadOnlyList<StoredCheckpoint>>(copies);
    }

    public Task DeleteAsync(IReadOnlyCollection<StoredCheckpoint> copies, CancellationToken cancellationToken)
    {
        foreach (var copy in copies)
            File.Delete(copy.TransientFor is { } run
                ? Path.Combine(TransientDirectory(run), $"{copy.Version}.{copy.Sha256}.ckpt")
                : PathOf(copy.Sha256));
        return Task.CompletedTask;
    }

    private string TransientRoot => Path.Combine(Directory, "transient");

    private string TransientDirectory(Guid runId) => Path.Combine(TransientRoot, runId.ToString("N"));

    /// <summary>The kept file first, then transient copies.</summary>
    private IEnumerable<string> PathsOf(string hash)
    {
        if (File.Exists(PathOf(hash))) yield return PathOf(hash);
        if (!System.IO.Directory.Exists(TransientRoot)) yield break;
        foreach (var path in System.IO.Directory.EnumerateFiles(TransientRoot, $"*.{hash}.ckpt", SearchOption.AllDirectories))
            yield return path;
    }

    /// <summary>The version in a transient file's name "{version}.{hash}.ckpt".</summary>
    private static int? TransientVersion(string path) =>
        int.TryParse(Path.GetFileName(path).Split('.')[0], out var version) ? version : null;

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

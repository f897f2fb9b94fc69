using Polly;
using Polly.Timeout;
using PrefTune.Messages;

namespace PrefTune.Storage.Checkpoints;

/// <summary>Checkpoints as files {hash}.ckpt in one directory (local, or a share every service mounts); a run's
/// transient copies as transient/{run}/{version}.{hash}.ckpt beside them. Files are written in the chunked format
/// (<see cref="ChunkedCheckpointFile"/>, a SHA-256 per 8 MiB chunk); older plain files still read.</summary>
public sealed class DirectoryCheckpointStore : ICheckpointStore, ICheckpointInventory
{
    /// <summary>Largest chunk of a file (each has its own SHA-256).</summary>
    public const int ChunkSize = ChunkedCheckpointFile.ChunkSize;

    private readonly ResiliencePipeline _pipeline;

    public DirectoryCheckpointStore(string directory, StorageResilienceOptions? resilience = null)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        _pipeline = (resilience ?? StorageResilienceOptions.Default).BuildPipeline();
    }

    public string Directory { get; }

    public Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        PutAsync(version, write, hash => PathOf(hash), cancellationToken);

    public Task<CheckpointRef> PutTransientAsync(Guid runId, int version, Func<Stream, CancellationToken, Task> write,
        CancellationToken cancellationToken) =>
        PutAsync(version, write, hash => Path.Combine(TransientDirectory(runId), $"{version}.{hash}.ckpt"), cancellationToken);

    /// <summary>Streams the content into a temporary file of this directory in the chunked format (the hash is known only
    /// at its end), then renames it to its hash's name: a reader never sees a half-written checkpoint, and the rename
    /// stays on one file system (transient copies live below this directory).</summary>
    private async Task<CheckpointRef> PutAsync(int version, Func<Stream, CancellationToken, Task> write, Func<string, string> pathOf,
        CancellationToken cancellationToken)
    {
        var store = new CheckpointRef { Version = version, Sha256 = "", Uri = UriOf(Directory), Bytes = 0 };
        return await RunAsync(store, async ct =>
        {
            var temporary = Path.Combine(Directory, $"put-{Guid.NewGuid():N}.tmp");
            try
            {
                string hash;
                long length;
                await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
                {
                    var chunked = new ChunkedCheckpointFile.Writer(file);
                    (hash, length) = await CheckpointHash.WriteAsync(chunked, write, ct);
                    chunked.Complete(hash);
                    file.Flush(flushToDisk: true);
                }
                var path = pathOf(hash);
                // same content already here (its name is its hash): the new file is not needed
                if (!File.Exists(path))
                {
                    System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    File.Move(temporary, path, overwrite: true);   // a racing put of the same content wrote the same bytes
                }
                return new CheckpointRef { Version = version, Sha256 = hash, Uri = UriOf(PathOf(hash)), Bytes = length };
            }
            finally
            {
                File.Delete(temporary);   // ours alone (a fresh name), absent once renamed
            }
        }, cancellationToken);
    }

    public async Task<Stream> OpenReadAsync(CheckpointRef reference, CancellationToken cancellationToken)
    {
        var hash = CheckpointHash.Validate(reference);
        return await RunAsync(reference, ct =>
        {
            // the kept copy, else any run's transient one (a copy released between finding and opening it: look again)
            for (var attempt = 0; ; attempt++)
            {
                ct.ThrowIfCancellationRequested();
                var path = PathsOf(hash).FirstOrDefault()
                    ?? throw new CheckpointStoreException($"checkpoint {reference.Uri} not found: no {PathOf(hash)} "
                        + "(nor a transient copy: only versions kept every checkpoint_every steps stay stored)");
                FileStream file;
                try
                {
                    file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 20);
                }
                catch (FileNotFoundException) when (attempt < 3)
                {
                    continue;
                }
                try
                {
                    // files written before the chunked format hold the content itself: read them as they are
                    Stream content = ChunkedCheckpointFile.IsChunked(file) ? new ChunkedCheckpointFile.Reader(file, path, reference.Uri) : file;
                    return ValueTask.FromResult<Stream>(new VerifiedReadStream(content, reference,
                        e => e is IOException ? new CheckpointStoreException($"checkpoint {reference.Uri}: reading {path}: {e.Message}", e) : e));
                }
                catch
                {
                    file.Dispose();
                    throw;
                }
            }
        }, cancellationToken);
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

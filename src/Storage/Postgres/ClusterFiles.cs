namespace PrefTune.Storage.Postgres;

/// <summary>What a cluster's data directory holds, read from PostgreSQL's own files; never changes them.</summary>
public abstract record ClusterLayout
{
    /// <summary>No data directory, or an empty one: nothing recorded yet, initdb may run.</summary>
    public sealed record Absent : ClusterLayout;

    /// <summary>PrefTune started initdb here and it never finished (its marker is still there): holds no data.</summary>
    public sealed record Unfinished : ClusterLayout;

    /// <summary>A complete cluster made by PostgreSQL <see cref="Version"/>.</summary>
    public sealed record Ready(string Version) : ClusterLayout;

    /// <summary>A data directory that holds files but cannot be used as it is; <see cref="Problem"/> names the file and what to do.</summary>
    public sealed record Damaged(string Problem) : ClusterLayout;
}

/// <summary>The running server of a data directory, from the postmaster.pid PostgreSQL writes and removes itself.</summary>
public sealed record Postmaster(int Pid, int? Port, string? Status);

/// <summary>Reads a cluster's data directory: its layout, its version, its running server.</summary>
public static class ClusterFiles
{
    /// <summary>
    /// Written by PrefTune into the cluster folder before initdb and removed when initdb succeeded: the only
    /// evidence that lets a data directory be removed (an interrupted initdb leaves one that holds nothing).
    /// </summary>
    public const string InitMarker = "initdb-unfinished";

    private const string Repair = "Run `preftune db repair` (it never deletes anything)";

    public static ClusterLayout Inspect(string clusterRoot)
    {
        var dataDir = Path.Combine(clusterRoot, "data");
        if (File.Exists(Path.Combine(clusterRoot, InitMarker))) return new ClusterLayout.Unfinished();
        if (!Directory.Exists(dataDir) || !Directory.EnumerateFileSystemEntries(dataDir).Any()) return new ClusterLayout.Absent();

        var versionFile = Path.Combine(dataDir, "PG_VERSION");
        if (!File.Exists(versionFile))
            return new ClusterLayout.Damaged(
                $"{versionFile} is missing, so PrefTune cannot tell which PostgreSQL made the cluster in {dataDir}; it holds data and was left untouched. " +
                $"{Repair}: it restores PG_VERSION when the cluster's own files prove the version.");
        var version = ReadVersion(versionFile);
        if (version is null)
            return new ClusterLayout.Damaged(
                $"{versionFile} is garbled (it should hold PostgreSQL's major version, e.g. 15); the cluster in {dataDir} was left untouched. " +
                $"{Repair}: it rewrites PG_VERSION when the cluster's own files prove the version.");
        var control = Path.Combine(dataDir, "global", "pg_control");
        if (!File.Exists(control))
            return new ClusterLayout.Damaged(
                $"{control} is missing: {dataDir} is not a complete PostgreSQL cluster and was left untouched. " +
                $"Restore the data directory from a backup, or move it away (PrefTune then creates a new cluster).");
        return new ClusterLayout.Ready(version);
    }

    /// <summary>The major version in a PG_VERSION file, or null if the file is missing, empty or not a number.</summary>
    public static string? ReadVersion(string versionFile)
    {
        try
        {
            var text = File.ReadAllText(versionFile).Trim();
            return text.Length is > 0 and < 4 && text.All(char.IsAsciiDigit) ? text : null;
        }
        catch (IOException) { return null; }
    }

    /// <summary>
    /// The version the cluster's own files prove: every database folder (base/OID) carries its own PG_VERSION,
    /// written by the server that created it. Null unless there is at least one and all of them agree.
    /// </summary>
    public static string? ProveVersion(string dataDir)
    {
        var baseDir = Path.Combine(dataDir, "base");
        if (!Directory.Exists(baseDir) || !File.Exists(Path.Combine(dataDir, "global", "pg_control"))) return null;
        var versions = Directory.GetDirectories(baseDir)
            .Select(d => ReadVersion(Path.Combine(d, "PG_VERSION")))
            .ToList();
        return versions.Count > 0 && versions.All(v => v is not null) && versions.Distinct().Count() == 1 ? versions[0] : null;
    }

    /// <summary>
    /// The server running on <paramref name="dataDir"/>, or null when none does (no postmaster.pid, or a stale one
    /// whose process is gone or is not this directory's postmaster). Its lines: pid, data directory, start time,
    /// port, socket directory, listen address, shared-memory key, status.
    /// </summary>
    public static Postmaster? Running(string dataDir)
    {
        string[] lines;
        try { lines = File.ReadAllLines(Path.Combine(dataDir, "postmaster.pid")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        if (lines.Length == 0 || !int.TryParse(lines[0].Trim(), out var pid) || pid <= 0) return null;
        if (!IsPostmasterOf(pid, dataDir)) return null;
        int? port = lines.Length > 3 && int.TryParse(lines[3].Trim(), out var p) && p is > 0 and < 65536 ? p : null;
        var status = lines.Length > 7 ? lines[7].Trim() : null;
        return new Postmaster(pid, port, status);
    }

    /// <summary>Whether process <paramref name="pid"/> is alive and is the postmaster of this data directory.</summary>
    private static bool IsPostmasterOf(int pid, string dataDir)
    {
        if (!IsAlive(pid)) return false;
        try
        {
            // the postmaster works in its data directory: the pid file seen through its working directory is this one
            // (same pid, start time and path), whatever symlinks either path went through
            return File.ReadAllText($"/proc/{pid}/cwd/postmaster.pid") == File.ReadAllText(Path.Combine(dataDir, "postmaster.pid"));
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // another user's process, whose working directory we may not see: a reused pid is told apart by its name at least
            try { return File.ReadAllText($"/proc/{pid}/comm").Trim() == "postgres"; }
            catch (Exception f) when (f is IOException or UnauthorizedAccessException) { return false; }
        }
    }

    /// <summary>Whether process <paramref name="pid"/> runs: exists and is not a zombie (a container's init may never reap the postmaster).</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) S ...": the state follows the last ')' (comm may itself hold parentheses)
            return stat[(stat.LastIndexOf(')') + 1)..].TrimStart() is [not ('Z' or 'X'), ..];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Bytes in the files under <paramref name="folder"/> (0 if it does not exist).</summary>
    public static long Size(string folder) =>
        Directory.Exists(folder)
            ? new DirectoryInfo(folder).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 })
                .Sum(f => { try { return f.Length; } catch (IOException) { return 0L; } })
            : 0;
}

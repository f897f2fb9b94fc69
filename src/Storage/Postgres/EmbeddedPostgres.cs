using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace PrefTune.Storage.Postgres;

/// <summary>
/// A private PostgreSQL started from the machine's own server binaries (/usr/lib/postgresql/*/bin), for
/// when no database is configured. The cluster lives under a data folder and is reused: a running
/// server is returned as is, a stopped one is started, and only a missing one is created. Nothing here
/// deletes or re-creates a cluster that holds data: a data directory it cannot use is an error that names
/// the file and what to do (<see cref="RepairAsync"/>). Listens on 127.0.0.1 and a Unix socket beside the
/// data; every connection needs the password kept owner-only in the data folder (<see cref="ClusterAuth"/>).
/// </summary>
public static class EmbeddedPostgres
{
    /// <summary>Extra server flags for every start, e.g. "-c fsync=off -c synchronous_commit=off" (not durable: tests only).</summary>
    public const string FlagsVariable = "PREFTUNE_POSTGRES_FLAGS";

    /// <summary>The port last used; a cache only: a running server's own postmaster.pid wins over it.</summary>
    public const string PortFile = "postgres.port";
    private const string LocationFile = "postgres.location";
    private const string LockFile = "postgres.lock";
    private const string BinariesRoot = "/usr/lib/postgresql";
    private const string SharedClusterRoot = "/var/tmp/preftune-postgres";
    private const string ServiceUser = "postgres";
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan ServerWait = TimeSpan.FromSeconds(60);

    /// <summary>Starts (or reuses) the private server for <paramref name="dataFolder"/> and returns its Npgsql connection string.</summary>
    public static async Task<string> EnsureStartedAsync(string dataFolder, CancellationToken ct)
    {
        dataFolder = WritableFolder(dataFolder);
        await using var folderLock = await LockAsync(dataFolder, ct);

        var cluster = ResolveCluster(dataFolder);
        switch (ClusterFiles.Inspect(cluster.Root))
        {
            case ClusterLayout.Damaged damaged:
                throw new DataFolderException(damaged.Problem);
            case ClusterLayout.Absent or ClusterLayout.Unfinished:
                await InitializeAsync(dataFolder, cluster, ct);
                break;
        }
        var trusts = ClusterAuth.TrustsConnections(cluster.DataDir);
        var password = ClusterAuth.ReadPassword(dataFolder);
        if (password is null && !trusts)
            throw new DataFolderException(
                $"{ClusterAuth.PasswordPath(dataFolder)} is missing: the private server in {cluster.DataDir} lets nobody in without it. " +
                "Run `preftune db repair`: it sets a new password with the server stopped and keeps every record.");

        var port = await RunningPortAsync(dataFolder, cluster.DataDir, ct) ?? await StartAsync(dataFolder, cluster, ct);
        if (trusts)
        {
            // made by an earlier PrefTune with trust auth: any local user was its superuser
            await ClusterAuth.MigrateAsync(dataFolder, cluster.DataDir, port, cluster.RunAsServiceUser, ct);
            password = ClusterAuth.ReadPassword(dataFolder)!;
        }
        return ClusterAuth.ConnectionString(port, password!);
    }

    /// <summary>Stops the private server for <paramref name="dataFolder"/> if it runs (its data stays for the next start); returns the server it stopped.</summary>
    public static async Task<Postmaster?> StopAsync(string dataFolder)
    {
        dataFolder = Path.GetFullPath(dataFolder);
        if (!Directory.Exists(dataFolder)) return null;
        // a read-only data folder must not keep its server from being stopped: then without the lock
        await using var folderLock = IsWritable(dataFolder) ? await LockAsync(dataFolder, CancellationToken.None) : null;
        return await StopServerAsync(ClusterDirectory(dataFolder));
    }

    private static async Task<Postmaster?> StopServerAsync(string clusterRoot)
    {
        var dataDir = Path.Combine(clusterRoot, "data");
        if (ClusterFiles.Running(dataDir) is not { } server) return null;
        // SIGINT is PostgreSQL's fast shutdown (what pg_ctl -m fast sends); needs no binaries of the cluster's version
        await RunAsync(null, "kill", ["-INT", server.Pid.ToString()], CancellationToken.None);
        var deadline = DateTime.UtcNow + ServerWait;
        while (ClusterFiles.IsAlive(server.Pid))
        {
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"the private PostgreSQL (pid {server.Pid}) did not stop within {ServerWait.TotalSeconds:0} s; see {Path.Combine(clusterRoot, "server.log")}");
            await Task.Delay(50);
        }
        return server;
    }

    /// <summary>Where the cluster of <paramref name="dataFolder"/> lives (it moves to /var/tmp when the postgres user cannot reach the folder).</summary>
    public static string ClusterDirectory(string dataFolder) =>
        ReadLocation(Path.GetFullPath(dataFolder)) ?? Path.Combine(Path.GetFullPath(dataFolder), "postgres");

    /// <summary>What `preftune db status` prints; reads files only (works on a read-only data folder, takes no lock).</summary>
    public static EmbeddedStatus Status(string dataFolder)
    {
        dataFolder = Path.GetFullPath(dataFolder);
        var root = ClusterDirectory(dataFolder);
        var dataDir = Path.Combine(root, "data");
        var layout = ClusterFiles.Inspect(root);
        var server = ClusterFiles.Running(dataDir);
        var state = (layout, server) switch
        {
            (_, not null) => "running",
            (ClusterLayout.Absent, _) => "not created (the next command creates it)",
            (ClusterLayout.Unfinished, _) => "unfinished initdb (the next command re-creates it; it holds no data)",
            (ClusterLayout.Damaged, _) => "damaged",
            _ => "stopped",
        };
        string? auth = null;
        if (File.Exists(Path.Combine(dataDir, "pg_hba.conf")))
            auth = ClusterAuth.TrustsConnections(dataDir) ? "trust: any local user gets in (the next start sets a password)"
                : File.Exists(ClusterAuth.PasswordPath(dataFolder)) ? $"scram-sha-256, password in {ClusterAuth.PasswordPath(dataFolder)} (owner-only)"
                : $"scram-sha-256, but {ClusterAuth.PasswordPath(dataFolder)} is missing (run `preftune db repair`)";
        var portFile = ReadPort(dataFolder);
        string? portProblem = (server?.Port, portFile) switch
        {
            ({ } real, { } cached) when real != cached => $"{PortFile} says {cached} (the next command rewrites it)",
            ({ }, null) => $"{PortFile} is missing or garbled (the next command rewrites it)",
            _ => null,
        };
        return new EmbeddedStatus(dataFolder, root, state, (layout as ClusterLayout.Damaged)?.Problem, server?.Pid, server?.Port ?? portFile, portProblem,
            ClusterFiles.ReadVersion(Path.Combine(dataDir, "PG_VERSION")), auth, ClusterFiles.Size(root));
    }

    /// <summary>
    /// What the error messages point to. Never deletes anything: restores a lost or garbled PG_VERSION when the
    /// cluster's own files prove the version, sets a new password (server stopped, single-user mode) when the
    /// password file is lost, then starts the server, which migrates trust auth and rewrites a lost or wrong port
    /// file. Returns what it did; throws <see cref="DataFolderException"/> saying what to do when it cannot.
    /// </summary>
    public static async Task<IReadOnlyList<string>> RepairAsync(string dataFolder, CancellationToken ct)
    {
        dataFolder = WritableFolder(dataFolder);
        var done = new List<string>();
        await using (await LockAsync(dataFolder, ct))
        {
            var cluster = ResolveCluster(dataFolder);
            var versionFile = Path.Combine(cluster.DataDir, "PG_VERSION");
            if (ClusterFiles.Inspect(cluster.Root) is ClusterLayout.Damaged && ClusterFiles.ReadVersion(versionFile) is null
                && File.Exists(Path.Combine(cluster.DataDir, "global", "pg_control")))
            {
                var proven = ClusterFiles.ProveVersion(cluster.DataDir) ?? throw new DataFolderException(
                    $"{versionFile} is missing or garbled and the cluster's own files do not prove its version (each database folder " +
                    $"{Path.Combine(cluster.DataDir, "base")}/OID holds a PG_VERSION; here they are missing or disagree). Nothing was changed. " +
                    $"If you know the PostgreSQL major version that made the cluster (ls {BinariesRoot} lists the installed ones), " +
                    $"write it there, e.g. `echo 15 > {versionFile}`, then run `preftune db status`.");
                if (File.Exists(versionFile) && new FileInfo(versionFile).Length > 0)
                    File.Copy(versionFile, $"{versionFile}.garbled-{DateTime.UtcNow:yyyyMMddHHmmss}"); // kept: repair removes nothing
                await WriteClusterFileAsync(cluster, versionFile, proven + "\n", ct);
                done.Add($"restored {versionFile} ({proven}): every database folder under {Path.Combine(cluster.DataDir, "base")} records that version");
            }
            if (ClusterFiles.Inspect(cluster.Root) is ClusterLayout.Damaged damaged)
                throw new DataFolderException(damaged.Problem);

            if (ClusterFiles.Inspect(cluster.Root) is ClusterLayout.Ready && !ClusterAuth.TrustsConnections(cluster.DataDir) && !HasReadablePassword(dataFolder))
            {
                await ResetPasswordAsync(dataFolder, cluster, ct);
                done.Add($"set a new password for the private server (the old {ClusterAuth.PasswordPath(dataFolder)} was lost or garbled); no record was touched");
            }
        }

        var before = Status(dataFolder);
        var connection = await EnsureStartedAsync(dataFolder, ct);
        await DatabaseProbe.EnsureReachableAsync(connection, TimeSpan.FromSeconds(10), ct);
        if (before.PortProblem is not null) done.Add($"rewrote {Path.Combine(dataFolder, PortFile)} from the server's postmaster.pid (port {Status(dataFolder).Port})");
        if (before.Auth?.StartsWith("trust", StringComparison.Ordinal) == true) done.Add($"the server asked no password (trust auth): set one, kept in {ClusterAuth.PasswordPath(dataFolder)}, and rewrote pg_hba.conf");
        if (before.Pid is null) done.Add("started the private server");
        return done;
    }

    private sealed record Cluster(string Root, bool RunAsServiceUser)
    {
        public string DataDir => Path.Combine(Root, "data");
    }

    private static bool HasReadablePassword(string dataFolder)
    {
        try { return ClusterAuth.ReadPassword(dataFolder) is not null; }
        catch (DataFolderException) { return false; }
    }

    /// <summary>The full path of a data folder PrefTune can write in; a clear error naming it otherwise (nothing in it is changed).</summary>
    private static string WritableFolder(string dataFolder)
    {
        dataFolder = Path.GetFullPath(dataFolder);
        try { Directory.CreateDirectory(dataFolder); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw NotWritable(dataFolder, e); }
        if (!IsWritable(dataFolder, out var error)) throw NotWritable(dataFolder, error!);
        return dataFolder;
    }

    private static DataFolderException NotWritable(string dataFolder, Exception e) => new(
        $"the data folder {dataFolder} is not writable ({e.Message}); PrefTune keeps its PostgreSQL cluster, port and password there. " +
        "Make it writable again (e.g. chmod u+w, or remount it read-write), or point --data / PREFTUNE_DATAFOLDER at another folder. Nothing in it was changed.");

    private static bool IsWritable(string folder) => IsWritable(folder, out _);

    private static bool IsWritable(string folder, out Exception? error)
    {
        // the permission bits do not tell (root ignores them, a read-only mount keeps them): try it
        try
        {
            using (new FileStream(Path.Combine(folder, $".write-test-{Environment.ProcessId}"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
            error = null;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e;
            return false;
        }
    }

    private static Cluster ResolveCluster(string dataFolder)
    {
        var asRoot = IsRoot();
        var root = ReadLocation(dataFolder);
        if (root is null)
        {
            root = Path.Combine(dataFolder, "postgres");
            if (asRoot && !ServiceUserCanReach(dataFolder))
            {
                // e.g. a mktemp -d (0700) parent: the server user could not open its own files there
                var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(dataFolder)))[..16];
                root = Path.Combine(SharedClusterRoot, hash);
                Directory.CreateDirectory(SharedClusterRoot);
                File.WriteAllText(Path.Combine(dataFolder, LocationFile), root);
            }
        }
        Directory.CreateDirectory(root);
        return new Cluster(root, asRoot);
    }

    private static async Task InitializeAsync(string dataFolder, Cluster cluster, CancellationToken ct)
    {
        var marker = Path.Combine(cluster.Root, ClusterFiles.InitMarker);
        // the one removal: a data directory whose initdb PrefTune started and never saw finish holds nothing
        if (File.Exists(marker) && Directory.Exists(cluster.DataDir) && ClusterFiles.Running(cluster.DataDir) is null)
            Directory.Delete(cluster.DataDir, recursive: true);
        var password = ClusterAuth.EnsurePassword(dataFolder);
        await File.WriteAllTextAsync(marker,
            "PrefTune is creating the cluster in data/ with initdb. If this file outlives it, initdb was interrupted: data/ holds nothing yet, and PrefTune re-creates it.\n", ct);

        var passwordFile = Path.Combine(cluster.Root, "initdb.password");
        File.Delete(passwordFile);
        await using (var stream = ClusterAuth.CreateOwnerOnly(passwordFile))
        await using (var writer = new StreamWriter(stream))
            await writer.WriteLineAsync(password);
        try
        {
            if (cluster.RunAsServiceUser)
                await RunAsync(null, "chown", ["-R", $"{ServiceUser}:{ServiceUser}", cluster.Root], ct);
            var fast = (Environment.GetEnvironmentVariable(FlagsVariable) ?? "").Contains("fsync=off", StringComparison.Ordinal);
            List<string> args = ["-D", cluster.DataDir, "-U", "postgres", "--auth=scram-sha-256", $"--pwfile={passwordFile}", "--encoding=UTF8", "--locale=C.UTF-8"];
            if (fast) args.Add("--no-sync");
            await RunAsync(cluster, Path.Combine(FindBinaries(null), "initdb"), args, ct);
        }
        finally
        {
            File.Delete(passwordFile);
        }
        File.Delete(marker);
    }

    /// <summary>
    /// The port of the server already running on <paramref name="dataDir"/> (from its postmaster.pid, which PostgreSQL
    /// keeps right), or null when none runs. Repairs the port file when it was lost, garbled or wrong.
    /// </summary>
    private static async Task<int?> RunningPortAsync(string dataFolder, string dataDir, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + ServerWait;
        while (true)
        {
            if (ClusterFiles.Running(dataDir) is not { } server) return null;
            // a server still starting (or stopping) has written its pid before its port and status
            if (server is { Port: { } port, Status: "ready" } && await AnswersAsync(port, ct))
            {
                if (ReadPort(dataFolder) != port) await WritePortAsync(dataFolder, port, ct);
                return port;
            }
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"the private PostgreSQL (pid {server.Pid}, {Path.Combine(dataDir, "postmaster.pid")}) did not become ready within {ServerWait.TotalSeconds:0} s");
            await Task.Delay(100, ct);
        }
    }

    private static async Task<int> StartAsync(string dataFolder, Cluster cluster, CancellationToken ct)
    {
        var port = ReadPort(dataFolder) is { } known && IsFree(known) ? known : FreePort();
        if (ReadPort(dataFolder) != port) await WritePortAsync(dataFolder, port, ct);
        var bin = FindBinaries(ClusterFiles.ReadVersion(Path.Combine(cluster.DataDir, "PG_VERSION")));
        // unix sockets live beside the data, unless the path is too long for one (108 bytes): then TCP only
        var socketDir = cluster.Root.Length + ".s.PGSQL.65535.lock".Length + 2 < 100 ? cluster.Root : "";
        var options = $"-p {port} -h 127.0.0.1 -k '{socketDir}' {Environment.GetEnvironmentVariable(FlagsVariable)}".Trim();
        var log = Path.Combine(cluster.Root, "server.log");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // a stale postmaster.pid (its process gone) does not block this: the postmaster checks the pid and replaces it
                await RunAsync(cluster, Path.Combine(bin, "pg_ctl"), ["-D", cluster.DataDir, "-l", log, "-w", "-t", "60", "-o", options, "start"], ct);
                return port;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                // after a crash the old server's backends may hold its shared memory for a moment longer
                await Task.Delay(TimeSpan.FromSeconds(attempt), ct);
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException($"{e.Message}{Environment.NewLine}server log {log}:{Environment.NewLine}{Tail(log)}", e);
            }
        }
    }

    /// <summary>Sets a new superuser password through single-user mode (server stopped: nobody else can be connected), then saves it.</summary>
    private static async Task ResetPasswordAsync(string dataFolder, Cluster cluster, CancellationToken ct)
    {
        await StopServerAsync(cluster.Root);
        var password = ClusterAuth.NewPassword();
        var bin = FindBinaries(ClusterFiles.ReadVersion(Path.Combine(cluster.DataDir, "PG_VERSION")));
        await RunAsync(cluster, Path.Combine(bin, "postgres"), ["--single", "-D", cluster.DataDir, "-c", "password_encryption=scram-sha-256", "postgres"], ct,
            input: $"ALTER ROLE postgres PASSWORD '{password}';\n");
        ClusterAuth.SavePassword(dataFolder, password);
    }

    /// <summary>Writes a file of the cluster atomically, owned like the data directory, mode 0600 (as initdb makes them).</summary>
    private static async Task WriteClusterFileAsync(Cluster cluster, string path, string text, CancellationToken ct)
    {
        var temporary = path + ".preftune";
        await File.WriteAllTextAsync(temporary, text, ct);
        ClusterAuth.MakeOwnerOnly(temporary);
        if (cluster.RunAsServiceUser) await ChownLikeAsync(cluster.DataDir, temporary, ct);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Gives <paramref name="path"/> the owner and group of <paramref name="like"/> (root writing a file the server user must own).</summary>
    internal static Task ChownLikeAsync(string like, string path, CancellationToken ct) =>
        RunAsync(null, "chown", [$"--reference={like}", path], ct);

    private static string Tail(string path)
    {
        try { return string.Join(Environment.NewLine, File.ReadLines(path).TakeLast(10)); }
        catch (IOException) { return "(no log)"; }
        catch (UnauthorizedAccessException) { return "(no log)"; }
    }

    /// <summary>The bin folder of the highest installed version, or of the version the existing cluster was made with.</summary>
    private static string FindBinaries(string? clusterVersion)
    {
        var candidates = Directory.Exists(BinariesRoot)
            ? Directory.GetDirectories(BinariesRoot)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), out var v) ? v : -1))
                .Where(c => c.Version > 0 && File.Exists(Path.Combine(c.Dir, "initdb")) && File.Exists(Path.Combine(c.Dir, "pg_ctl")))
                .OrderByDescending(c => c.Version)
                .ToList()
            : [];
        if (candidates.Count == 0)
            throw new InvalidOperationException("PostgreSQL server binaries not found; install postgresql or set PREFTUNE_DATABASE");
        if (clusterVersion is null) return candidates[0].Dir;
        return candidates.FirstOrDefault(c => c.Version.ToString() == clusterVersion).Dir
            ?? throw new InvalidOperationException(
                $"the private PostgreSQL cluster was created by version {clusterVersion}, whose binaries are not installed; install postgresql-{clusterVersion} (the cluster is kept as it is)");
    }

    private static int? ReadPort(string dataFolder)
    {
        var file = Path.Combine(dataFolder, PortFile);
        try { return int.TryParse(File.ReadAllText(file).Trim(), out var port) && port is > 0 and < 65536 ? port : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private static async Task WritePortAsync(string dataFolder, int port, CancellationToken ct)
    {
        // written whole or not at all: a crash mid-write must not leave a garbled port file
        var file = Path.Combine(dataFolder, PortFile);
        await File.WriteAllTextAsync(file + ".new", port.ToString(), ct);
        File.Move(file + ".new", file, overwrite: true);
    }

    private static string? ReadLocation(string dataFolder)
    {
        var file = Path.Combine(dataFolder, LocationFile);
        return File.Exists(file) ? File.ReadAllText(file).Trim() : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException) { return false; }
    }

    private static async Task<bool> AnswersAsync(int port, CancellationToken ct)
    {
        using var client = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            return true;
        }
        catch (SocketException) { return false; }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return false; }
    }

    private static bool IsRoot() => Environment.IsPrivilegedProcess;

    /// <summary>Whether the server user can traverse every folder down to (and including) <paramref name="folder"/>.</summary>
    private static bool ServiceUserCanReach(string folder)
    {
        using var process = Process.Start(new ProcessStartInfo("runuser")
        {
            ArgumentList = { "-u", ServiceUser, "--", "test", "-x", folder },
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("could not start runuser");
        process.WaitForExit();
        return process.ExitCode == 0;
    }

    private static async Task<int> RunAsync(Cluster? cluster, string program, IReadOnlyList<string> args, CancellationToken ct, bool check = true, string? input = null)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (cluster is { RunAsServiceUser: true })
        {
            // initdb and the server refuse to run as root
            info.FileName = "runuser";
            foreach (var a in (string[])["-u", ServiceUser, "--", program]) info.ArgumentList.Add(a);
        }
        else
        {
            info.FileName = program;
        }
        foreach (var a in args) info.ArgumentList.Add(a);
        if (cluster is not null) info.WorkingDirectory = cluster.Root;

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        if (input is not null) await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (check && process.ExitCode != 0)
            throw new InvalidOperationException(
                $"{Path.GetFileName(program)} {string.Join(' ', args)} failed (exit {process.ExitCode}): {(await stderr).Trim()} {(await stdout).Trim()}".Trim());
        await Task.WhenAll(stdout, stderr);
        return process.ExitCode;
    }

    /// <summary>One process at a time per data folder: services started together must not race to create the cluster.</summary>
    private static async Task<FileStream> LockAsync(string dataFolder, CancellationToken ct)
    {
        var path = Path.Combine(dataFolder, LockFile);
        var deadline = DateTime.UtcNow + LockWait;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, ct);
            }
            catch (IOException e)
            {
                throw new InvalidOperationException(
                    $"{path} stayed locked for {LockWait.TotalSeconds:0} s ({e.Message}): another PrefTune process is starting or repairing this data folder's server; wait for it, or find it with `fuser {path}`", e);
            }
        }
    }
}

/// <summary>The private server as `preftune db status` shows it.</summary>
/// <param name="DataFolder">The data folder (port, password, lock, and usually the cluster).</param>
/// <param name="ClusterDirectory">The cluster folder (data/, server.log, the Unix socket).</param>
/// <param name="State">running, stopped, damaged, not created, unfinished initdb.</param>
/// <param name="Problem">For a damaged cluster: the file and what to do.</param>
/// <param name="Pid">The postmaster's pid while it runs.</param>
/// <param name="Port">The port it listens on (from its postmaster.pid), else the one it will use.</param>
/// <param name="PortProblem">When the port file disagrees with the running server.</param>
/// <param name="Version">The PostgreSQL major version of the cluster (its PG_VERSION).</param>
/// <param name="Auth">How connections are authenticated.</param>
/// <param name="Bytes">Bytes of the files in the cluster folder.</param>
public sealed record EmbeddedStatus(string DataFolder, string ClusterDirectory, string State, string? Problem, int? Pid, int? Port,
    string? PortProblem, string? Version, string? Auth, long Bytes);

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace PrefTune.Storage.Postgres;

/// <summary>
/// A private PostgreSQL started from the machine's own server binaries (/usr/lib/postgresql/*/bin), for
/// when no database is configured. The cluster lives under a data folder and is reused: a running
/// server is returned as is, a stopped one is started, and only a missing one is created.
/// Listens on 127.0.0.1 only, on a port chosen once and remembered in the data folder; trust auth.
/// </summary>
public static class EmbeddedPostgres
{
    /// <summary>Extra server flags for every start, e.g. "-c fsync=off -c synchronous_commit=off" (not durable: tests only).</summary>
    public const string FlagsVariable = "PREFTUNE_POSTGRES_FLAGS";

    private const string PortFile = "postgres.port";
    private const string LocationFile = "postgres.location";
    private const string LockFile = "postgres.lock";
    private const string BinariesRoot = "/usr/lib/postgresql";
    private const string SharedClusterRoot = "/var/tmp/preftune-postgres";
    private const string ServiceUser = "postgres";
    private static readonly TimeSpan LockWait = TimeSpan.FromSeconds(120);

    /// <summary>Starts (or reuses) the private server for <paramref name="dataFolder"/> and returns its Npgsql connection string.</summary>
    public static async Task<string> EnsureStartedAsync(string dataFolder, CancellationToken ct)
    {
        dataFolder = Path.GetFullPath(dataFolder);
        Directory.CreateDirectory(dataFolder);
        await using var folderLock = await LockAsync(dataFolder, ct);

        var port = ReadPort(dataFolder);
        if (port is { } known && await AnswersAsync(known, ct))
            return ConnectionString(known);

        var cluster = ResolveCluster(dataFolder);
        var dataDir = Path.Combine(cluster.Root, "data");
        var bin = FindBinaries(InstalledVersion(dataDir));
        if (port is null)
        {
            port = FreePort();
            await File.WriteAllTextAsync(Path.Combine(dataFolder, PortFile), port.Value.ToString(), ct);
        }

        if (!File.Exists(Path.Combine(dataDir, "PG_VERSION")))
            await InitializeAsync(cluster, bin, ct);
        await StartAsync(cluster, bin, port.Value, ct);
        return ConnectionString(port.Value);
    }

    /// <summary>Stops the private server for <paramref name="dataFolder"/> if it runs; its data stays for the next start.</summary>
    public static async Task StopAsync(string dataFolder)
    {
        dataFolder = Path.GetFullPath(dataFolder);
        if (!Directory.Exists(dataFolder)) return;
        await using var folderLock = await LockAsync(dataFolder, CancellationToken.None);
        var root = ReadLocation(dataFolder) ?? Path.Combine(dataFolder, "postgres");
        var dataDir = Path.Combine(root, "data");
        if (!File.Exists(Path.Combine(dataDir, "postmaster.pid"))) return;
        var bin = FindBinaries(InstalledVersion(dataDir));
        var cluster = new Cluster(root, RunAsServiceUser: IsRoot());
        var pgCtl = Path.Combine(bin, "pg_ctl");
        // exit 3: not running (a crash or a reboot left a stale pid file); pg_ctl start copes with that later
        if (await RunAsync(cluster, pgCtl, ["-D", dataDir, "status"], CancellationToken.None, check: false) == 3) return;
        await RunAsync(cluster, pgCtl, ["-D", dataDir, "-m", "fast", "-w", "-t", "60", "stop"], CancellationToken.None);
    }

    /// <summary>Where the cluster of <paramref name="dataFolder"/> lives (it moves to /var/tmp when the postgres user cannot reach the folder).</summary>
    public static string ClusterDirectory(string dataFolder) =>
        ReadLocation(Path.GetFullPath(dataFolder)) ?? Path.Combine(Path.GetFullPath(dataFolder), "postgres");

    private sealed record Cluster(string Root, bool RunAsServiceUser);

    private static string ConnectionString(int port) => $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres";

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

    private static async Task InitializeAsync(Cluster cluster, string bin, CancellationToken ct)
    {
        var dataDir = Path.Combine(cluster.Root, "data");
        if (Directory.Exists(dataDir)) Directory.Delete(dataDir, recursive: true); // a half-made cluster from an interrupted initdb
        if (cluster.RunAsServiceUser)
            await RunAsync(null, "chown", ["-R", $"{ServiceUser}:{ServiceUser}", cluster.Root], ct);
        var fast = (Environment.GetEnvironmentVariable(FlagsVariable) ?? "").Contains("fsync=off", StringComparison.Ordinal);
        List<string> args = ["-D", dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"];
        if (fast) args.Add("--no-sync");
        await RunAsync(cluster, Path.Combine(bin, "initdb"), args, ct);
    }

    private static async Task StartAsync(Cluster cluster, string bin, int port, CancellationToken ct)
    {
        var dataDir = Path.Combine(cluster.Root, "data");
        // unix sockets live beside the data, unless the path is too long for one (108 bytes): then TCP only
        var socketDir = cluster.Root.Length + ".s.PGSQL.65535.lock".Length + 2 < 100 ? cluster.Root : "";
        var options = $"-p {port} -h 127.0.0.1 -k '{socketDir}' {Environment.GetEnvironmentVariable(FlagsVariable)}".Trim();
        var log = Path.Combine(cluster.Root, "server.log");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RunAsync(cluster, Path.Combine(bin, "pg_ctl"), ["-D", dataDir, "-l", log, "-w", "-t", "60", "-o", options, "start"], ct);
                return;
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
                $"the private PostgreSQL cluster was created by version {clusterVersion}, whose binaries are not installed; install postgresql-{clusterVersion} or delete the data folder");
    }

    private static string? InstalledVersion(string dataDir)
    {
        var file = Path.Combine(dataDir, "PG_VERSION");
        return File.Exists(file) ? File.ReadAllText(file).Trim() : null;
    }

    private static int? ReadPort(string dataFolder)
    {
        var file = Path.Combine(dataFolder, PortFile);
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), out var port) ? port : null;
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

    private static async Task<int> RunAsync(Cluster? cluster, string program, IReadOnlyList<string> args, CancellationToken ct, bool check = true)
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
        }
    }
}

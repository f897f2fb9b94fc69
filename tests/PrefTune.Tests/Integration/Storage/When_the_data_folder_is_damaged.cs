using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text.Json;
using Npgsql;
using PrefTune.Storage.Postgres;
using PrefTune.Tests.Integration.Cli;
using Xunit;

namespace PrefTune.Tests.Integration.Storage;

/// <summary>
/// A private PostgreSQL made by `preftune run` in a data folder of its own, holding one recorded run; each test
/// damages the folder as a user or a crash would and leaves it healthy again. Needs the machine's PostgreSQL
/// server binaries, not a running server.
/// </summary>
[UnsupportedOSPlatform("windows")]
public sealed class DamagedDataFolder : IAsyncLifetime
{
    private const string Experiment = """
        name: data-folder
        seeds: [3]
        task:
          kind: bandit
          bandit: {reward_center: 70, prompts: 4, hidden: 32}
        loop: {B: 10, C: 10, M: 10, T: 1, gradient_steps: 2, learning_rate: 0.01, eval_every: 2, eval_samples: 20}
        methods:
          - {name: reinforce, data: online}
        """;

    private readonly string _work = Path.Combine(Path.GetTempPath(), $"preftune-datafolder-{Guid.NewGuid():N}");

    /// <summary>Traversable by every user (0755), so that only the password file's own mode keeps it secret, and the cluster lives inside.</summary>
    public string Folder => Path.Combine(_work, "data");

    public string RunId { get; private set; } = "";

    public string ClusterData => Path.Combine(EmbeddedPostgres.ClusterDirectory(Folder), "data");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_work, (UnixFileMode)0b111_101_101);
        Directory.CreateDirectory(Folder, (UnixFileMode)0b111_101_101);
        var file = Path.Combine(_work, "data-folder.yaml");
        await File.WriteAllTextAsync(file, Experiment);
        var run = await CliAsync("run", file, "--json", "--output", Path.Combine(_work, "out"));
        Assert.True(run.ExitCode == 0, run.Error);
        using var summary = JsonDocument.Parse(run.Output);
        RunId = summary.RootElement.GetProperty("methods")[0].GetProperty("run_ids")[0].GetString()!;
    }

    public Task<(int ExitCode, string Output, string Error)> CliAsync(params string[] args) => PrefTuneProcess.RunWithDataFolderAsync(Folder, args);

    /// <summary>Nothing lost: `runs` still lists the run recorded before the damage.</summary>
    public async Task AssertRunListedAsync()
    {
        var runs = await CliAsync("runs", "--json");
        Assert.True(runs.ExitCode == 0, runs.Error);
        Assert.Contains(RunId, runs.Output);
    }

    public async Task<JsonElement> StatusAsync()
    {
        var status = await CliAsync("db", "status", "--json");
        Assert.True(status.ExitCode == 0, status.Error);
        return JsonDocument.Parse(status.Output).RootElement.Clone();
    }

    public async Task DisposeAsync()
    {
        var cluster = EmbeddedPostgres.ClusterDirectory(Folder);
        await EmbeddedPostgres.StopAsync(Folder);
        if (Directory.Exists(cluster)) Directory.Delete(cluster, recursive: true);
        Directory.Delete(_work, recursive: true);
    }
}

[UnsupportedOSPlatform("windows")]
public sealed class When_the_data_folder_is_damaged(DamagedDataFolder data) : IClassFixture<DamagedDataFolder>
{
    private string VersionFile => Path.Combine(data.ClusterData, "PG_VERSION");

    [Fact]
    public async Task A_lost_PG_VERSION_is_a_clear_error_and_repair_restores_it()
    {
        var original = await File.ReadAllTextAsync(VersionFile);
        File.Delete(VersionFile);   // while the server runs

        var refused = await data.CliAsync("runs");
        AssertClearError(refused, 2, VersionFile, "preftune db repair");
        Assert.True(Directory.Exists(Path.Combine(data.ClusterData, "base")), "the cluster was left in place");

        var repair = await data.CliAsync("db", "repair");
        Assert.True(repair.ExitCode == 0, repair.Error);
        Assert.Contains($"restored {VersionFile}", repair.Output);
        Assert.Equal(original.Trim(), (await File.ReadAllTextAsync(VersionFile)).Trim());
        await data.AssertRunListedAsync();
    }

    [Fact]
    public async Task A_truncated_PG_VERSION_of_a_stopped_server_is_a_clear_error_and_repair_restores_it()
    {
        var original = await File.ReadAllTextAsync(VersionFile);
        Assert.Equal(0, (await data.CliAsync("db", "stop")).ExitCode);
        await File.WriteAllTextAsync(VersionFile, "");

        var refused = await data.CliAsync("runs");
        AssertClearError(refused, 2, VersionFile, "garbled");
        var status = await data.StatusAsync();
        Assert.Equal("damaged", status.GetProperty("state").GetString());
        Assert.Contains(VersionFile, status.GetProperty("problem").GetString());

        var repair = await data.CliAsync("db", "repair");
        Assert.True(repair.ExitCode == 0, repair.Error);
        Assert.Contains("started the private server", repair.Output);
        Assert.Equal(original.Trim(), (await File.ReadAllTextAsync(VersionFile)).Trim());
        await data.AssertRunListedAsync();
    }

    [Theory]
    [InlineData("garbled")]
    [InlineData("deleted")]
    [InlineData("wrong")]
    public async Task A_port_file_lost_while_the_server_runs_is_rewritten_from_postmaster_pid(string damage)
    {
        await data.AssertRunListedAsync();   // running
        var portFile = Path.Combine(data.Folder, EmbeddedPostgres.PortFile);
        var realPort = int.Parse(File.ReadLines(Path.Combine(data.ClusterData, "postmaster.pid")).ElementAt(3));
        switch (damage)
        {
            case "garbled": await File.WriteAllTextAsync(portFile, "\0\0not a port"); break;
            case "deleted": File.Delete(portFile); break;
            case "wrong": await File.WriteAllTextAsync(portFile, (realPort == 1 ? 2 : realPort - 1).ToString()); break;
        }

        await data.AssertRunListedAsync();
        Assert.Equal(realPort.ToString(), (await File.ReadAllTextAsync(portFile)).Trim());
    }

    [Fact]
    public async Task A_read_only_data_folder_is_a_clear_error_and_loses_nothing()
    {
        Assert.Equal(0, (await data.CliAsync("db", "stop")).ExitCode);
        using (ReadOnly(data.Folder))
        {
            var refused = await data.CliAsync("runs");
            AssertClearError(refused, 2, data.Folder, "not writable");
            // status only reads
            Assert.Equal("stopped", (await data.StatusAsync()).GetProperty("state").GetString());
        }
        await data.AssertRunListedAsync();
    }

    [Fact]
    public async Task Status_and_stop_say_where_the_server_is_and_stop_it()
    {
        await data.AssertRunListedAsync();
        var running = await data.StatusAsync();
        Assert.Equal("running", running.GetProperty("state").GetString());
        var pid = running.GetProperty("pid").GetInt32();
        Assert.True(Alive(pid), $"pid {pid} is alive");
        Assert.Equal(data.Folder, running.GetProperty("data_folder").GetString());
        Assert.Equal(await File.ReadAllTextAsync(Path.Combine(data.ClusterData, "PG_VERSION")), running.GetProperty("version").GetString() + "\n");
        Assert.True(running.GetProperty("bytes").GetInt64() > 10_000_000, "a cluster holds at least its catalogs");
        Assert.StartsWith("scram-sha-256", running.GetProperty("auth").GetString());

        var stop = await data.CliAsync("db", "stop");
        Assert.True(stop.ExitCode == 0, stop.Error);
        Assert.Contains($"pid {pid}", stop.Output);
        Assert.False(Alive(pid), $"pid {pid} is gone after stop");
        var stopped = await data.StatusAsync();
        Assert.Equal("stopped", stopped.GetProperty("state").GetString());
        Assert.False(stopped.TryGetProperty("pid", out _));
        Assert.Contains("was not running", (await data.CliAsync("db", "stop")).Output);

        var start = await data.CliAsync("db", "start");
        Assert.True(start.ExitCode == 0, start.Error);
        Assert.Equal("running", (await data.StatusAsync()).GetProperty("state").GetString());
    }

    [Fact]
    public async Task Another_local_user_is_refused()
    {
        await data.AssertRunListedAsync();
        var password = ClusterAuth.PasswordPath(data.Folder);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(password));
        var port = (await data.StatusAsync()).GetProperty("port").GetInt32();

        // without the password, or with a wrong one, over TCP: refused by authentication
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => OpenAsync($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false"));
        var wrong = await Assert.ThrowsAsync<PostgresException>(() => OpenAsync($"Host=127.0.0.1;Port={port};Username=postgres;Password=guess;Database=postgres;Pooling=false"));
        Assert.Equal(PostgresErrorCodes.InvalidPassword, wrong.SqlState);
        // with it, in
        await OpenAsync($"Host=127.0.0.1;Port={port};Username=postgres;Password={(await File.ReadAllTextAsync(password)).Trim()};Database=postgres;Pooling=false");

        if (!Environment.IsPrivilegedProcess) return; // only root can become another user here; the checks above hold for everyone
        var psql = Directory.GetFiles("/usr/lib/postgresql", "psql", SearchOption.AllDirectories).First();
        var cluster = EmbeddedPostgres.ClusterDirectory(data.Folder);
        foreach (var host in (string[])["127.0.0.1", cluster])   // TCP, and the Unix socket beside the data
        {
            var attempt = await AsNobodyAsync(psql, "-w", "-h", host, "-p", port.ToString(), "-U", "postgres", "-d", "postgres", "-c", "select 1");
            Assert.True(attempt.ExitCode != 0, $"nobody connected through {host}: {attempt.Output}");
            Assert.Contains("password", attempt.Error);
        }
        var read = await AsNobodyAsync("cat", password);
        Assert.True(read.ExitCode != 0 && read.Error.Contains("Permission denied"), $"nobody read {password}: {read.Output}{read.Error}");
    }

    [Fact]
    public async Task A_cluster_of_an_earlier_version_with_trust_auth_is_given_a_password_and_keeps_its_runs()
    {
        // what earlier versions made: initdb --auth=trust, no password file
        Assert.Equal(0, (await data.CliAsync("db", "stop")).ExitCode);
        var hba = Path.Combine(data.ClusterData, "pg_hba.conf");
        var secured = await File.ReadAllLinesAsync(hba);
        await File.WriteAllLinesAsync(hba, secured.Select(line => line.Replace("scram-sha-256", "trust")));
        File.Delete(ClusterAuth.PasswordPath(data.Folder));
        Assert.StartsWith("trust", (await data.StatusAsync()).GetProperty("auth").GetString());

        await data.AssertRunListedAsync();
        Assert.True(File.Exists(ClusterAuth.PasswordPath(data.Folder)));
        Assert.DoesNotContain(File.ReadLines(hba), line => !line.TrimStart().StartsWith('#') && line.Split('#')[0].Contains("trust"));
        var port = (await data.StatusAsync()).GetProperty("port").GetInt32();
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => OpenAsync($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false"));
    }

    [Fact]
    public async Task A_lost_password_file_is_a_clear_error_and_repair_sets_a_new_password()
    {
        await data.AssertRunListedAsync();
        File.Delete(ClusterAuth.PasswordPath(data.Folder));

        AssertClearError(await data.CliAsync("runs"), 2, ClusterAuth.PasswordPath(data.Folder), "preftune db repair");
        var repair = await data.CliAsync("db", "repair");
        Assert.True(repair.ExitCode == 0, repair.Error);
        Assert.Contains("set a new password", repair.Output);
        await data.AssertRunListedAsync();
        var replay = await data.CliAsync("replay", data.RunId);
        Assert.True(replay.ExitCode == 0, replay.Error + replay.Output);
    }

    private static void AssertClearError((int ExitCode, string Output, string Error) result, int exitCode, params string[] mentions)
    {
        Assert.True(result.ExitCode == exitCode, $"exit {result.ExitCode}: {result.Error}{result.Output}");
        foreach (var mention in mentions) Assert.Contains(mention, result.Error);
        Assert.DoesNotContain("   at ", result.Error);   // no stack trace
    }

    /// <summary>Runs (a zombie nobody reaped has stopped: state Z in /proc/PID/stat).</summary>
    private static bool Alive(int pid) =>
        File.Exists($"/proc/{pid}/stat") && File.ReadAllText($"/proc/{pid}/stat").Split(") ")[^1][0] is not ('Z' or 'X');

    private static async Task OpenAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
    }

    private static async Task<(int ExitCode, string Output, string Error)> AsNobodyAsync(params string[] command)
    {
        var info = new ProcessStartInfo("runuser") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in (string[])["-u", "nobody", "--", .. command]) info.ArgumentList.Add(arg);
        info.Environment.Remove("PGPASSWORD");
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await error);
    }

    /// <summary>Makes <paramref name="folder"/> read-only until disposed: a read-only bind mount as root (root ignores permission bits), chmod otherwise.</summary>
    private static IDisposable ReadOnly(string folder)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            var mode = File.GetUnixFileMode(folder);
            File.SetUnixFileMode(folder, mode & ~(UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite));
            return new Undo(() => File.SetUnixFileMode(folder, mode));
        }
        Run("mount", "--bind", folder, folder);
        Run("mount", "-o", "remount,bind,ro", folder);
        return new Undo(() => Run("umount", folder));
    }

    private static void Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)}: {error}");
    }

    private sealed class Undo(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}

[UnsupportedOSPlatform("windows")]
public sealed class When_initdb_was_interrupted : IAsyncLifetime
{
    private readonly string _work = Path.Combine(Path.GetTempPath(), $"preftune-initdb-{Guid.NewGuid():N}");
    private string Folder => Path.Combine(_work, "data");

    [Fact]
    public async Task Only_the_folder_PrefTune_marked_unfinished_is_made_again()
    {
        Directory.CreateDirectory(_work, (UnixFileMode)0b111_101_101);
        Directory.CreateDirectory(Folder, (UnixFileMode)0b111_101_101);
        var cluster = EmbeddedPostgres.ClusterDirectory(Folder);
        var half = Path.Combine(cluster, "data", "base");
        Directory.CreateDirectory(half);
        await File.WriteAllTextAsync(Path.Combine(half, "left-by-initdb"), "x");

        // without PrefTune's marker the same folder is someone's data: refused, kept
        var refused = await Assert.ThrowsAsync<DataFolderException>(() => EmbeddedPostgres.EnsureStartedAsync(Folder, CancellationToken.None));
        Assert.Contains("PG_VERSION", refused.Message);
        Assert.True(File.Exists(Path.Combine(half, "left-by-initdb")));

        // with it (initdb started and never finished): made again
        await File.WriteAllTextAsync(Path.Combine(cluster, ClusterFiles.InitMarker), "");
        var connection = await EmbeddedPostgres.EnsureStartedAsync(Folder, CancellationToken.None);
        await using (var open = new NpgsqlConnection(connection))
            await open.OpenAsync();
        Assert.False(File.Exists(Path.Combine(half, "left-by-initdb")));
        Assert.False(File.Exists(Path.Combine(cluster, ClusterFiles.InitMarker)));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        var cluster = EmbeddedPostgres.ClusterDirectory(Folder);
        await EmbeddedPostgres.StopAsync(Folder);
        if (Directory.Exists(cluster)) Directory.Delete(cluster, recursive: true);
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }
}

using System.Security.Cryptography;
using Npgsql;

namespace PrefTune.Storage.Postgres;

/// <summary>
/// Only the owner of the data folder gets into the private server: the superuser's password is generated at
/// cluster creation, kept owner-readable (0600) in the data folder, and every connection (TCP and Unix socket)
/// must give it (scram-sha-256). Clusters made by earlier versions with trust auth are migrated in place.
/// </summary>
public static class ClusterAuth
{
    public const string PasswordFile = "postgres.password";
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>A new file only its owner can read, created with that mode (never readable by others, not even for a moment).</summary>
    internal static FileStream CreateOwnerOnly(string path) => OperatingSystem.IsWindows()
        ? new FileStream(path, FileMode.CreateNew, FileAccess.Write)
        : new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnly });

    internal static void MakeOwnerOnly(string path)
    {
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, OwnerOnly);
    }

    public static string PasswordPath(string dataFolder) => Path.Combine(dataFolder, PasswordFile);

    /// <summary>The stored password, or null when there is no password file.</summary>
    public static string? ReadPassword(string dataFolder)
    {
        var file = PasswordPath(dataFolder);
        if (!File.Exists(file)) return null;
        var password = File.ReadAllText(file).Trim();
        if (password.Length < 16 || !password.All(char.IsAsciiHexDigit))
            throw new DataFolderException($"{file} is garbled (it should hold the private server's password, 64 hex digits). " +
                                          "Run `preftune db repair`: it sets a new password with the server stopped and keeps every record.");
        return password;
    }

    /// <summary>The stored password, or a new one written owner-only before anything uses it.</summary>
    public static string EnsurePassword(string dataFolder)
    {
        if (ReadPassword(dataFolder) is { } existing) return existing;
        var password = NewPassword();
        SavePassword(dataFolder, password);
        return password;
    }

    public static string NewPassword() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    /// <summary>Writes the password file 0600, created with that mode so that it is never readable by others, replaced atomically.</summary>
    public static void SavePassword(string dataFolder, string password)
    {
        var file = PasswordPath(dataFolder);
        var temporary = file + ".new";
        File.Delete(temporary);
        using (var stream = CreateOwnerOnly(temporary))
        using (var writer = new StreamWriter(stream))
            writer.WriteLine(password);
        File.Move(temporary, file, overwrite: true);
    }

    /// <summary>Whether pg_hba.conf still lets some connections in without a password (clusters of earlier versions).</summary>
    public static bool TrustsConnections(string dataDir) =>
        File.Exists(HbaPath(dataDir)) && File.ReadLines(HbaPath(dataDir)).Any(line => Method(line) is "trust");

    /// <summary>
    /// Moves a running trust-auth cluster to passwords without touching its data: sets the superuser's
    /// password (scram-sha-256), rewrites pg_hba.conf's trust lines, reloads, and waits until a connection
    /// without the password is refused. Safe to repeat if interrupted: the password file is written first and reused.
    /// </summary>
    public static async Task MigrateAsync(string dataFolder, string dataDir, int port, bool asServiceUser, CancellationToken ct)
    {
        var password = EnsurePassword(dataFolder);
        await using (var connection = new NpgsqlConnection(WithoutPassword(port)))
        {
            await connection.OpenAsync(ct);
            await using var set = new NpgsqlCommand($"set password_encryption = 'scram-sha-256'; alter role postgres password '{password}'", connection);
            await set.ExecuteNonQueryAsync(ct);

            var hba = HbaPath(dataDir);
            var lines = File.ReadAllLines(hba).Select(line => Method(line) is "trust" ? ReplaceMethod(line) : line).ToList();
            var temporary = hba + ".preftune";
            await File.WriteAllLinesAsync(temporary, lines, ct);
            MakeOwnerOnly(temporary);
            if (asServiceUser) await EmbeddedPostgres.ChownLikeAsync(dataDir, temporary, ct);
            File.Move(temporary, hba, overwrite: true);

            await using var reload = new NpgsqlCommand("select pg_reload_conf()", connection);
            await reload.ExecuteScalarAsync(ct);
        }
        // the postmaster reloads on the signal, a moment later: done when the door is shut
        for (var attempt = 0; await OpensWithoutPasswordAsync(port, ct); attempt++)
        {
            if (attempt >= 100) throw new InvalidOperationException($"private PostgreSQL on port {port} still trusts connections after reloading {HbaPath(dataDir)}");
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Whether a connection without any password gets in (true under trust auth).</summary>
    public static async Task<bool> OpensWithoutPasswordAsync(int port, CancellationToken ct)
    {
        try
        {
            await using var connection = new NpgsqlConnection(WithoutPassword(port));
            await connection.OpenAsync(ct);
            return true;
        }
        catch (NpgsqlException) { return false; }
    }

    /// <summary>What every PrefTune process is given (services started as child processes get it in PREFTUNE_DATABASE).</summary>
    public static string ConnectionString(int port, string password) =>
        $"Host=127.0.0.1;Port={port};Username=postgres;Password={password};Database=postgres";

    private static string WithoutPassword(int port) => $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false";

    private static string HbaPath(string dataDir) => Path.Combine(dataDir, "pg_hba.conf");

    /// <summary>The auth method of a pg_hba.conf record, or null for comments and blank lines.</summary>
    private static string? Method(string line) => MethodAt(Words(line)) is { } at ? Words(line)[at] : null;

    private static string ReplaceMethod(string line)
    {
        var words = Words(line);
        words[MethodAt(words)!.Value] = "scram-sha-256";
        return string.Join(' ', words) + "   # was trust; changed by PrefTune so that only the data folder's owner gets in";
    }

    private static readonly HashSet<string> Methods =
        ["trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident", "peer", "ldap", "radius", "cert", "pam", "bsd"];

    /// <summary>Where the method is: after DATABASE USER for local, after the address (CIDR, or address and mask) for host records.</summary>
    private static int? MethodAt(string[] words)
    {
        if (words.Length == 0) return null;
        for (var i = words[0] == "local" ? 3 : 4; i < words.Length; i++)
            if (Methods.Contains(words[i])) return i;
        return null;
    }

    private static string[] Words(string line)
    {
        var hash = line.IndexOf('#');
        return (hash >= 0 ? line[..hash] : line).Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
    }
}

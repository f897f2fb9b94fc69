namespace PrefTune.Orchestrator.Cli;

/// <summary>The report folder, checked before the first step: a folder that cannot be written would otherwise be found out only after every run was computed.</summary>
public static class OutputFolder
{
    /// <summary>Creates <paramref name="path"/> and writes (then removes) a file of its own there, since permission bits say nothing to root.</summary>
    /// <exception cref="ArgumentException">The folder cannot be created or written; the message names it and why.</exception>
    public static void EnsureWritable(string path)
    {
        try
        {
            Directory.CreateDirectory(path);
            var probe = Path.Combine(path, $".preftune-write-check-{Environment.ProcessId}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--output {path}: the report folder cannot be written ({e.Message}); nothing was run");
        }
    }
}

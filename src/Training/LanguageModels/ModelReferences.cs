using System.Text.RegularExpressions;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// What a user may write where a model (or its tokenizer) is asked for: a path (absolute, or relative to the file or
/// folder that names it), or a Hugging Face id <c>org/name</c> (optionally <c>@revision</c>) found in the local Hugging
/// Face cache, the layout <c>huggingface_hub</c> writes: <c>models--org--name/snapshots/&lt;commit&gt;/</c>, with
/// <c>refs/&lt;branch&gt;</c> holding the commit a branch name means. Nothing is downloaded: a model that is not on disk
/// fails naming every place looked at.
/// </summary>
public static partial class ModelReferences
{
    [GeneratedRegex(@"^(?<org>[A-Za-z0-9][A-Za-z0-9._-]*)/(?<name>[A-Za-z0-9][A-Za-z0-9._-]*)(@(?<revision>[A-Za-z0-9._/-]+))?$")]
    private static partial Regex HubId();

    /// <summary>
    /// The directory or file <paramref name="reference"/> names: the path under <paramref name="folder"/> when it exists,
    /// else, for an <c>org/name</c> id, its snapshot in the Hugging Face cache, else the path as resolved (whoever loads
    /// it reports what is missing). Empty stays empty.
    /// </summary>
    public static string Resolve(string reference, string folder, IReadOnlyDictionary<string, string?>? environment = null)
    {
        if (reference == "" || Path.IsPathRooted(reference)) return reference;
        var path = Path.GetFullPath(Path.Combine(folder, reference));
        if (Directory.Exists(path) || File.Exists(path) || HubId().Match(reference) is not { Success: true } id) return path;
        var cache = CacheRoots(environment);
        var repository = $"models--{id.Groups["org"].Value}--{id.Groups["name"].Value}";
        var revision = id.Groups["revision"].Success ? id.Groups["revision"].Value : "main";
        foreach (var root in cache)
        {
            var snapshot = Snapshot(Path.Combine(root, repository), revision);
            if (snapshot is not null) return snapshot;
        }
        throw new ModelReferenceException(reference,
            $"not found: no {path}, and no snapshot '{revision}' of {id.Groups["org"].Value}/{id.Groups["name"].Value} in the Hugging Face cache "
            + $"(looked in {string.Join(", ", cache.Select(r => Path.Combine(r, repository)))}); PrefTune never downloads: "
            + "fetch it with huggingface-cli download, or name its directory");
    }

    /// <summary>
    /// The hub caches to look in, first match wins, as huggingface_hub reads them: HF_HUB_CACHE, else HF_HOME/hub, else
    /// XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
    /// </summary>
    public static IReadOnlyList<string> CacheRoots(IReadOnlyDictionary<string, string?>? environment = null)
    {
        string? Get(string name) => environment is null ? Environment.GetEnvironmentVariable(name)
            : environment.TryGetValue(name, out var value) ? value : null;
        if (Get("HF_HUB_CACHE") is { Length: > 0 } hub) return [hub];
        if (Get("HF_HOME") is { Length: > 0 } home) return [Path.Combine(home, "hub")];
        if (Get("XDG_CACHE_HOME") is { Length: > 0 } xdg) return [Path.Combine(xdg, "huggingface", "hub")];
        var user = Get("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return [Path.Combine(user, ".cache", "huggingface", "hub")];
    }

    /// <summary>snapshots/&lt;commit&gt; of a cached repository: the commit itself, or the one refs/&lt;revision&gt; holds.</summary>
    private static string? Snapshot(string repository, string revision)
    {
        var snapshots = Path.Combine(repository, "snapshots");
        if (!Directory.Exists(snapshots)) return null;
        var refFile = Path.Combine(repository, "refs", revision);
        var commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : revision;
        if (commit.Contains('/') || commit.Contains("..")) return null;   // a ref names a commit, never a path
        var snapshot = Path.Combine(snapshots, commit);
        return Directory.Exists(snapshot) ? snapshot : null;
    }
}

/// <summary>A model reference that names nothing on this machine; <see cref="Reference"/> is what the user wrote.</summary>
public sealed class ModelReferenceException(string reference, string message) : ArgumentException($"{reference}: {message}")
{
    public string Reference { get; } = reference;
}

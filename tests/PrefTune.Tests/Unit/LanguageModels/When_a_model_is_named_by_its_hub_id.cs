using PrefTune.Tests.Unit.Experiments;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// A model may be named <c>org/name</c> and found in the local Hugging Face cache, laid out as huggingface_hub lays it
/// out (files in blobs/, symlinked from snapshots/&lt;commit&gt;/, refs/main naming the commit). The cache here is made
/// by the test from the stories260K fixture; nothing is downloaded, and a model that is not there fails naming where
/// it was looked for.
/// </summary>
public sealed class When_a_model_is_named_by_its_hub_id : IDisposable
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private readonly string _root = Directory.CreateTempSubdirectory("preftune-hf-cache-").FullName;
    private readonly string? _hubCacheBefore = Environment.GetEnvironmentVariable("HF_HUB_CACHE");

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", _hubCacheBefore);
        Directory.Delete(_root, recursive: true);
    }

    /// <summary>models--{org}--{name} under <paramref name="hub"/>: blobs by content, a snapshot of symlinks, refs/main.</summary>
    private static string Cache(string hub, string org, string name, string commit = Commit, string? branch = "main")
    {
        var repository = Directory.CreateDirectory(Path.Combine(hub, $"models--{org}--{name}")).FullName;
        var blobs = Directory.CreateDirectory(Path.Combine(repository, "blobs")).FullName;
        var snapshot = Directory.CreateDirectory(Path.Combine(repository, "snapshots", commit)).FullName;
        foreach (var file in Directory.GetFiles(Fixtures.StoriesHf))
        {
            var blob = Path.Combine(blobs, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file))));
            if (!File.Exists(blob)) File.Copy(file, blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.GetRelativePath(snapshot, blob));
        }
        if (branch is not null)
        {
            Directory.CreateDirectory(Path.Combine(repository, "refs"));
            File.WriteAllText(Path.Combine(repository, "refs", branch), commit);   // no newline, as huggingface_hub writes it
        }
        return snapshot;
    }

    private Dictionary<string, string?> Home(string home) => new() { ["HF_HOME"] = home, ["HOME"] = Path.Combine(_root, "user") };

    [Fact]
    public void Org_slash_name_is_the_snapshot_refs_main_names_and_it_loads()
    {
        var home = Path.Combine(_root, "hf-home");
        var snapshot = Cache(Path.Combine(home, "hub"), "karpathy", "stories260K");

        var resolved = ModelReferences.Resolve("karpathy/stories260K", Path.Combine(_root, "elsewhere"), Home(home));

        Assert.Equal(snapshot, resolved);
        using var cached = Checkpoints.Load(resolved);
        using var direct = Checkpoints.Load(Fixtures.StoriesHf);
        Assert.Equal((direct.Config.Architecture, direct.Config.VocabSize, direct.Config.Layers), (cached.Config.Architecture, cached.Config.VocabSize, cached.Config.Layers));
        var (expected, actual) = (direct.state_dict(), cached.state_dict());
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (name, tensor) in expected)
            Assert.True(tensor.allclose(actual[name], rtol: 0, atol: 0), name);
    }

    [Fact]
    public void A_revision_after_the_at_sign_is_a_branch_in_refs_or_a_commit()
    {
        var hub = Path.Combine(_root, "hub");
        var main = Cache(hub, "org", "model");
        var other = Cache(hub, "org", "model", commit: "fedcba9876543210fedcba9876543210fedcba98", branch: "v2");
        var environment = new Dictionary<string, string?> { ["HF_HUB_CACHE"] = hub };

        Assert.Equal(main, ModelReferences.Resolve("org/model", _root, environment));
        Assert.Equal(other, ModelReferences.Resolve("org/model@v2", _root, environment));
        Assert.Equal(main, ModelReferences.Resolve($"org/model@{Commit}", _root, environment));
    }

    [Fact]
    public void The_cache_is_looked_for_where_huggingface_hub_looks_first_match_wins()
    {
        Assert.Equal(["/a/hub-cache"], ModelReferences.CacheRoots(new Dictionary<string, string?> { ["HF_HUB_CACHE"] = "/a/hub-cache", ["HF_HOME"] = "/b" }));
        Assert.Equal([Path.Combine("/b", "hub")], ModelReferences.CacheRoots(new Dictionary<string, string?> { ["HF_HOME"] = "/b", ["XDG_CACHE_HOME"] = "/c" }));
        Assert.Equal([Path.Combine("/c", "huggingface", "hub")], ModelReferences.CacheRoots(new Dictionary<string, string?> { ["XDG_CACHE_HOME"] = "/c", ["HOME"] = "/h" }));
        Assert.Equal([Path.Combine("/h", ".cache", "huggingface", "hub")], ModelReferences.CacheRoots(new Dictionary<string, string?> { ["HOME"] = "/h" }));
    }

    [Fact]
    public void A_directory_of_that_name_beside_the_file_wins_over_the_cache()
    {
        var home = Path.Combine(_root, "hf-home");
        Cache(Path.Combine(home, "hub"), "org", "model");
        var local = Directory.CreateDirectory(Path.Combine(_root, "project", "org", "model")).FullName;

        Assert.Equal(local, ModelReferences.Resolve("org/model", Path.Combine(_root, "project"), Home(home)));
    }

    [Fact]
    public void A_model_that_is_not_there_fails_naming_every_place_looked_at()
    {
        var home = Path.Combine(_root, "hf-home");
        Cache(Path.Combine(home, "hub"), "org", "model", branch: null);   // a snapshot, but no refs/main

        var missing = Assert.Throws<ModelReferenceException>(() => ModelReferences.Resolve("org/absent", Path.Combine(_root, "project"), Home(home)));
        Assert.Contains(Path.Combine(_root, "project", "org", "absent"), missing.Message);
        Assert.Contains(Path.Combine(home, "hub", "models--org--absent"), missing.Message);
        Assert.Contains("never downloads", missing.Message);

        var noMain = Assert.Throws<ModelReferenceException>(() => ModelReferences.Resolve("org/model", _root, Home(home)));
        Assert.Contains("snapshot 'main'", noMain.Message);
        // a path that is not a hub id is left for the loader, which names what is missing there
        Assert.Equal(Path.Combine(_root, "no", "such", "dir"), ModelReferences.Resolve("no/such/dir", _root, Home(home)));
    }

    [Fact]
    public void An_experiment_file_names_its_policy_by_hub_id()
    {
        var hub = Path.Combine(_root, "hub");
        var snapshot = Cache(hub, "karpathy", "stories260K");
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", hub);
        var prompts = Path.Combine(_root, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "Once upon a time"}"""]);
        string Text(string model) => $$"""
            name: lm
            task:
              kind: length
              length:
                prompts: {{prompts}}
              model:
                path: {{model}}
                stop_ids: "1"
                max_new_tokens: 16
            loop:
              B: 8
              C: 4
              M: 8
            methods:
              - name: dpo
            """;

        var experiment = ExperimentText.Parse(Text("karpathy/stories260K"));
        Assert.Equal(snapshot, experiment.Runs[0].Task.Model!.Path);   // recorded whole: the run names the snapshot it used

        var problem = ExperimentText.ProblemAt(Text("karpathy/absent"), "task.model.path", Path.Combine(hub, "models--karpathy--absent"));
        Assert.Contains("org/name in the Hugging Face cache", problem.Allowed);
        // one problem for the field, not a second "missing" after it
        Assert.Single(ExperimentText.Problems(Text("karpathy/absent")).Problems, p => p.Path == "task.model.path");
    }
}

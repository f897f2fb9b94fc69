using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// `preftune export`'s core: a language-model policy's checkpoint bytes become a Hugging Face directory that loads back
/// to the trained weights (not the base model's), with the base model's tokenizer beside them, and an export never
/// writes into a directory that holds anything.
/// </summary>
public sealed class When_a_policy_checkpoint_is_exported : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("preftune-export-").FullName;
    private static readonly ExportSource Source = new(Guid.Parse("0190a0b0-0000-7000-8000-00000000abcd"), 200);

    // 40 tokens spread over stories260K's 512-token vocabulary
    private static readonly int[] Ids = Enumerable.Range(0, 40).Select(i => (i * 37 + 1) % 512).ToArray();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    public static TheoryData<string> Bases => new() { "hf", "llama2c" };

    private static LanguageModelSpec SpecOf(string kind) => kind == "hf"
        ? new LanguageModelSpec { Path = Fixtures.StoriesHf }
        : new LanguageModelSpec { Path = Fixtures.StoriesBin, Tokenizer = Fixtures.StoriesTokenizerBin };

    /// <summary>The base policy with every weight moved by seeded noise: a stand-in for a trained checkpoint.</summary>
    private static LanguageModelPolicy Perturbed(LanguageModelSpec spec)
    {
        TorchRuntime.UseThreads(1);
        var policy = (LanguageModelPolicy)new LanguageModelFamily(spec).CreatePolicy(seed: 0);
        using var noGrad = no_grad();
        using var generator = new Generator(7);
        foreach (var parameter in policy.parameters())
            using (var noise = randn(parameter.shape, generator: generator))
                parameter.add_(noise * 0.02f);
        return policy;
    }

    [Theory]
    [MemberData(nameof(Bases))]
    public void It_loads_back_to_the_policy_s_logits_not_the_base_model_s(string kind)
    {
        var spec = SpecOf(kind);
        using var policy = Perturbed(spec);
        var weights = policy.SaveWeights();
        var output = Path.Combine(_root, "export");

        var result = HfExport.Write(spec, weights, output, Source);

        using var loaded = Fixtures.Load(output);
        using var baseModel = Fixtures.Load(spec.Path);
        var exported = Fixtures.Logits(loaded, Ids);
        Assert.True(Fixtures.MaxDiff(Fixtures.Logits(policy.Model, Ids), exported) <= 1e-6);
        Assert.True(Fixtures.MaxDiff(Fixtures.Logits(baseModel, Ids), exported) > 1e-3, "the export holds the base model's weights");
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(weights)), result.WeightsSha256);

        var provenance = JsonNode.Parse(File.ReadAllText(Path.Combine(output, HfExport.ProvenanceFile)))!;
        Assert.Equal(Source.RunId.ToString(), provenance["run_id"]!.GetValue<string>());
        Assert.Equal(200, provenance["version"]!.GetValue<int>());
        Assert.Equal(result.WeightsSha256, provenance["weights_sha256"]!.GetValue<string>());
        Assert.Equal(spec.Path, provenance["base_model"]!.GetValue<string>());
        Assert.Equal(result.Files.Order(), Directory.EnumerateFiles(output).Select(Path.GetFileName).Order()!);
    }

    [Fact]
    public void The_policy_s_weights_are_the_model_s_hugging_face_tensors_once_each()
    {
        TorchRuntime.UseThreads(1);
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        // ... and then the value head, its own submodule beside the model (never part of an export)
        var names = model.state_dict().Keys.Select(k => "lm." + k).Concat(["value_head.weight", "value_head.bias"]).ToList();

        using var policy = new LanguageModelPolicy(model);

        // Registering the model as "lm" must not add its fields again under their C# names (lm.backbone.*).
        Assert.Equal(names, policy.state_dict().Keys);
    }

    [Fact]
    public void A_hugging_face_base_s_tokenizer_files_are_copied_and_encode_alike()
    {
        var spec = SpecOf("hf");
        using var policy = Perturbed(spec);
        var output = Path.Combine(_root, "export");

        HfExport.Write(spec, policy.SaveWeights(), output, Source);

        foreach (var name in HfExport.HfTokenizerFiles)
            Assert.Equal(File.ReadAllBytes(Path.Combine(Fixtures.StoriesHf, name)), File.ReadAllBytes(Path.Combine(output, name)));
        using var copied = TextTokenizers.Load(Path.Combine(output, "tokenizer.json"));
        using var original = TextTokenizers.Load(Path.Combine(Fixtures.StoriesHf, "tokenizer.json"));
        Assert.Equal([1, 403, 407, 261, 378], copied.Encode("Once upon a time"));
        Assert.Equal(original.Encode("Once upon a time"), copied.Encode("Once upon a time"));
    }

    [Fact]
    public void A_llama2c_base_s_tokenizer_bin_is_copied_and_named_in_preftune_json()
    {
        var spec = SpecOf("llama2c");
        using var policy = Perturbed(spec);
        var output = Path.Combine(_root, "export");

        HfExport.Write(spec, policy.SaveWeights(), output, Source);

        var copy = Path.Combine(output, "tok512.bin");
        Assert.Equal(File.ReadAllBytes(Fixtures.StoriesTokenizerBin), File.ReadAllBytes(copy));
        var provenance = JsonNode.Parse(File.ReadAllText(Path.Combine(output, HfExport.ProvenanceFile)))!;
        Assert.Equal(["tok512.bin"], ((JsonArray)provenance["tokenizer_files"]!).Select(n => n!.GetValue<string>()));
        Assert.Equal(Fixtures.StoriesTokenizerBin, provenance["tokenizer"]!.GetValue<string>());
        using var copied = TextTokenizers.Load(copy);
        using var original = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);
        Assert.Equal(original.Encode("Once upon a time"), copied.Encode("Once upon a time"));
    }

    [Fact]
    public void A_non_empty_directory_is_refused_and_left_as_it_was()
    {
        var spec = SpecOf("hf");
        using var policy = Perturbed(spec);
        var output = Directory.CreateDirectory(Path.Combine(_root, "mine")).FullName;
        var notes = Path.Combine(output, "config.json");
        File.WriteAllText(notes, "the user's own file");
        var written = File.GetLastWriteTimeUtc(notes);

        var error = Assert.Throws<ArgumentException>(() => HfExport.Write(spec, policy.SaveWeights(), output, Source));

        Assert.Contains(output, error.Message);
        Assert.Contains("not empty", error.Message);
        Assert.Equal([notes], Directory.EnumerateFileSystemEntries(output));
        Assert.Equal("the user's own file", File.ReadAllText(notes));
        Assert.Equal(written, File.GetLastWriteTimeUtc(notes));
    }

    [Fact]
    public void An_empty_existing_directory_is_written_into()
    {
        var spec = SpecOf("llama2c");
        using var policy = Perturbed(spec);
        var output = Directory.CreateDirectory(Path.Combine(_root, "empty")).FullName;

        HfExport.Write(spec, policy.SaveWeights(), output, Source);

        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public void Weights_of_another_model_are_refused_before_anything_is_written()
    {
        TorchRuntime.UseThreads(1);
        using var other = new LanguageModelPolicy(Fixtures.Load(Fixtures.Tiny("tiny-llama")));
        var output = Path.Combine(_root, "export");

        var error = Assert.Throws<ArgumentException>(() => HfExport.Write(SpecOf("hf"), other.SaveWeights(), output, Source));

        Assert.Contains("do not fit the base model", error.Message);
        Assert.Contains(Fixtures.StoriesHf, error.Message);
        Assert.False(Directory.Exists(output));
    }
}

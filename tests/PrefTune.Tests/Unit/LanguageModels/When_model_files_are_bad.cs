using System.Text;
using System.Text.Json.Nodes;
using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// Broken model folders, written into a temporary directory from the tiny-llama fixture: each fails while loading,
/// before anything runs, with a <see cref="ModelLoadException"/> that names the file and the tensor.
/// </summary>
public sealed class When_model_files_are_bad : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("preftune-lm-").FullName;
    private static string Source => Fixtures.Tiny("tiny-llama");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>
    /// A safetensors file written here, independently of the loader: u64 header length, the JSON header padded to
    /// 8 bytes, the raw little-endian data. Tensors: name -> (dtype, shape, bytes).
    /// </summary>
    private static void WriteSafetensors(string file, IEnumerable<(string Name, string Dtype, long[] Shape, byte[] Data)> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        var offset = 0L;
        var list = tensors.ToList();
        foreach (var (name, dtype, shape, data) in list)
        {
            header[name] = new JsonObject { ["dtype"] = dtype, ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()), ["data_offsets"] = new JsonArray(offset, offset + data.Length) };
            offset += data.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = json.Concat(Enumerable.Repeat((byte)' ', (8 - json.Length % 8) % 8)).ToArray();
        using var stream = File.Create(file);
        stream.Write(BitConverter.GetBytes((ulong)padded.Length));
        stream.Write(padded);
        foreach (var t in list) stream.Write(t.Data);
    }

    /// <summary>The fixture's tensors as its header describes them, with their bytes.</summary>
    private static List<(string Name, string Dtype, long[] Shape, byte[] Data)> FixtureTensors()
    {
        var file = Path.Combine(Source, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        var headerLength = (int)BitConverter.ToUInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        return header.Where(kv => kv.Key != "__metadata__").Select(kv =>
        {
            var offsets = kv.Value!["data_offsets"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            return (kv.Key, kv.Value["dtype"]!.GetValue<string>(), kv.Value["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(),
                bytes[(8 + headerLength + (int)offsets[0])..(8 + headerLength + (int)offsets[1])]);
        }).ToList();
    }

    private string WriteModel(Func<List<(string Name, string Dtype, long[] Shape, byte[] Data)>, IEnumerable<(string, string, long[], byte[])>> edit, Action<JsonObject>? editConfig = null)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Source, "config.json")))!.AsObject();
        editConfig?.Invoke(config);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        WriteSafetensors(Path.Combine(dir, "model.safetensors"), edit(FixtureTensors()));
        return dir;
    }

    private static ModelLoadException Fails(string path) => Assert.Throws<ModelLoadException>(() => Checkpoints.Load(path).Dispose());

    [Fact]
    public void The_unchanged_copy_loads()
    {
        // The writer above is sound: what it writes from the fixture's own tensors loads to transformers' logits.
        var path = WriteModel(t => t);
        using var model = Fixtures.Load(path);
        var c = Fixtures.Expected(Source)["cases"]![1]!;
        Assert.True(Fixtures.MaxDiff(Fixtures.Logits(model, Fixtures.Ints(c["input_ids"])), Fixtures.Rows(c["logits"])) < 1e-4);
    }

    [Fact]
    public void A_sharded_checkpoint_loads_and_a_missing_shard_is_named()
    {
        // save_pretrained's layout for big models: model.safetensors.index.json maps each tensor to its shard.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Source, "config.json")))!.AsObject();
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var tensors = FixtureTensors();
        var shards = tensors.Select((t, i) => (t, File: i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors")).ToList();
        foreach (var group in shards.GroupBy(s => s.File))
            WriteSafetensors(Path.Combine(dir, group.Key), group.Select(s => s.t));
        var map = new JsonObject();
        foreach (var (t, file) in shards) map[t.Name] = file;
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        using (var model = Fixtures.Load(dir))
        {
            var c = Fixtures.Expected(Source)["cases"]![2]!;
            Assert.True(Fixtures.MaxDiff(Fixtures.Logits(model, Fixtures.Ints(c["input_ids"])), Fixtures.Rows(c["logits"])) < 1e-4);
        }
        File.Delete(Path.Combine(dir, "model-00002-of-00002.safetensors"));
        var e = Fails(dir);
        Assert.EndsWith("model-00002-of-00002.safetensors", e.File);
    }

    [Fact]
    public void A_missing_tensor_is_named()
    {
        var e = Fails(WriteModel(t => t.Where(x => x.Name != "model.layers.1.mlp.up_proj.weight")));
        Assert.Equal("model.layers.1.mlp.up_proj.weight", e.Tensor);
        Assert.EndsWith("model.safetensors", e.File);
        Assert.Contains("missing", e.Message);
        Assert.Contains("[64, 32]", e.Message);
    }

    [Fact]
    public void A_misshapen_tensor_is_named_with_both_shapes()
    {
        var e = Fails(WriteModel(t => t.Select(x => x.Name == "model.layers.0.self_attn.k_proj.weight"
            ? (x.Name, x.Dtype, new long[] { 8, 64 }, x.Data) : x)));
        Assert.Equal("model.layers.0.self_attn.k_proj.weight", e.Tensor);
        Assert.Contains("[8, 64]", e.Message);
        Assert.Contains("[16, 32]", e.Message);
    }

    [Fact]
    public void A_dtype_it_cannot_read_is_named()
    {
        var e = Fails(WriteModel(t => t.Select(x => x.Name == "model.norm.weight"
            ? (x.Name, "I32", x.Shape, x.Data) : x)));
        Assert.Equal("model.norm.weight", e.Tensor);
        Assert.Contains("I32", e.Message);
    }

    [Fact]
    public void An_unknown_architecture_names_config_json()
    {
        var e = Fails(WriteModel(t => t, c => c["architectures"] = new JsonArray("MambaForCausalLM")));
        Assert.EndsWith("config.json", e.File);
        Assert.Contains("MambaForCausalLM", e.Message);
    }

    [Fact]
    public void A_llama2c_checkpoint_with_a_negative_vocab_size_reads_its_own_classifier()
    {
        // run.c: vocab_size < 0 means wcls follows the RoPE tables. Given a copy of the embedding as wcls, the
        // untied model must compute what the tied one does.
        var bytes = File.ReadAllBytes(Fixtures.StoriesBin);
        var embedding = bytes[28..(28 + 512 * 64 * 4)];
        BitConverter.GetBytes(-512).CopyTo(bytes, 5 * 4);
        var file = Path.Combine(dir, "untied.bin");
        File.WriteAllBytes(file, [.. bytes, .. embedding]);
        using var untied = Fixtures.Load(file);
        using var tied = Fixtures.Load(Fixtures.StoriesBin);
        Assert.False(untied.Config.TieWordEmbeddings);
        Assert.Contains("lm_head.weight", untied.state_dict().Keys);
        int[] ids = [1, 403, 407, 261, 378, 432];
        Assert.Equal(0, Fixtures.MaxDiff(Fixtures.Logits(tied, ids), Fixtures.Logits(untied, ids)));
        File.WriteAllBytes(file, bytes);   // the header says untied, the classifier is missing
        Assert.Equal("lm_head.weight", Fails(file).Tensor);
    }

    [Fact]
    public void A_truncated_llama2c_checkpoint_names_the_array_it_cuts()
    {
        var file = Path.Combine(dir, "cut.bin");
        File.WriteAllBytes(file, File.ReadAllBytes(Fixtures.StoriesBin)[..400_000]);
        var e = Fails(file);
        Assert.Equal(file, e.File);
        Assert.Equal("model.layers.*.mlp.gate_proj.weight", e.Tensor);   // 28 + 4 * (512*64 + 5*64 + ...) passes 400,000 inside w1
    }

    [Fact]
    public void A_tokenizer_too_big_for_the_model_and_a_prompt_too_long_for_its_context_are_refused()
    {
        using var model = Fixtures.Load(Source);   // vocab 96, context 64
        using var tokenizer = TextTokenizers.Load(Fixtures.StoriesTokenizerBin);   // 512 tokens
        var e = Assert.Throws<ModelLoadException>(() => TokenizerChecks.EnsureFits(tokenizer, model.Config, Fixtures.StoriesTokenizerBin));
        Assert.Contains("512", e.Message);
        var tooLong = Assert.Throws<ArgumentException>(() => TextGeneration.Generate(model, [Enumerable.Repeat(5, 60).ToArray()], new SamplingSettings { MaxNewTokens = 5 }));
        Assert.Contains("context of 64", tooLong.Message);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>One tensor as a checkpoint file describes it, before its data is read.</summary>
/// <param name="File">The file holding it (a shard of a sharded checkpoint).</param>
public sealed record TensorEntry(string Name, string Dtype, long[] Shape, string File);

/// <summary>
/// Loading and saving language models in the formats users have: a Hugging Face model directory (config.json and
/// model.safetensors, or shards named by model.safetensors.index.json) and a llama2.c checkpoint (.bin, see
/// <see cref="Llama2cCheckpoint"/>). Every check runs on the headers before any weight is read: an unknown
/// architecture, a missing or misshapen tensor, or a dtype PrefTune cannot read is a <see cref="ModelLoadException"/>
/// naming the file and tensor.
/// </summary>
public static class Checkpoints
{
    /// <summary>Safetensors dtypes PrefTune reads (converted to float32 on load).</summary>
    private static readonly HashSet<string> FloatDtypes = ["F32", "F16", "BF16", "F64"];

    /// <summary>
    /// A directory is a Hugging Face model; a file is a llama2.c checkpoint. Read on the CPU, then moved to
    /// <paramref name="device"/> (default: the device setting, <see cref="ComputeDevice.Resolve"/>).
    /// </summary>
    public static LanguageModel Load(string path, Device? device = null)
    {
        device ??= ComputeDevice.Resolve();   // before reading: a bad device setting fails fast
        var model = Directory.Exists(path) ? LoadHf(path)
            : File.Exists(path) ? Llama2cCheckpoint.Load(path)
            : throw new ModelLoadException(path, null, "no such model directory or llama2.c checkpoint file");
        return device.type == DeviceType.CPU ? model : model.to(device);
    }

    /// <summary>Loads a Hugging Face model directory.</summary>
    public static LanguageModel LoadHf(string directory)
    {
        var config = ReadHfConfig(directory);
        var entries = ReadEntries(directory);
        var model = new LanguageModel(config);
        // A missing tensor is blamed on the file that should list it: the single file, or the shards' index.
        var weights = Path.Combine(directory, "model.safetensors");
        if (!File.Exists(weights)) weights += ".index.json";
        var wanted = Check(model, entries.ToDictionary(e => e.Name), config, weights);
        using var noGrad = no_grad();
        var state = model.state_dict();
        foreach (var shard in wanted.GroupBy(e => e.File))
        {
            var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(shard.Key, shard.Select(e => e.Name).ToList());
            foreach (var (name, tensor) in tensors)
                using (tensor) state[name].copy_(tensor.to_type(state[name].dtype));
        }
        return model;
    }

    /// <summary>The model's config without reading a weight: config.json (and generation_config.json's stop ids) of a
    /// directory, or a llama2.c checkpoint's header.</summary>
    public static LanguageModelConfig ReadConfig(string path) =>
        Directory.Exists(path) ? ReadHfConfig(path)
        : File.Exists(path) ? Llama2cCheckpoint.ReadConfig(path)
        : throw new ModelLoadException(path, null, "no such model directory or llama2.c checkpoint file");

    private static LanguageModelConfig ReadHfConfig(string directory)
    {
        var configFile = Path.Combine(directory, "config.json");
        if (!File.Exists(configFile)) throw new ModelLoadException(configFile, null, "missing: a Hugging Face model directory needs config.json");
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(configFile)) as JsonObject ?? throw new JsonException("not a JSON object"); }
        catch (JsonException e) { throw new ModelLoadException(configFile, null, "not valid JSON: " + e.Message); }
        var config = LanguageModelConfig.FromHfConfig(json, configFile);
        var generationFile = Path.Combine(directory, "generation_config.json");
        if (File.Exists(generationFile) && JsonNode.Parse(File.ReadAllText(generationFile))?["eos_token_id"] is { } stop)
            config = config with { StopIds = LanguageModelConfig.TokenIds(stop) };
        return config;
    }

    /// <summary>
    /// Saves as a Hugging Face model directory: config.json (the model's own), generation_config.json (its stop ids)
    /// and model.safetensors (float32; a tied head is not written, as save_pretrained does).
    /// </summary>
    public static void SaveHf(LanguageModel model, string directory)
    {
        Directory.CreateDirectory(directory);
        var json = model.Config.HfConfig.DeepClone().AsObject();
        json["torch_dtype"] = "float32";
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString(indented));
        // Where HF's generate reads which ids end a response (stories260K from llama2.c: BOS).
        var generation = new JsonObject { ["eos_token_id"] = new JsonArray(model.Config.StopIds.Select(id => (JsonNode)id).ToArray()) };
        if (model.Config.BosTokenId is { } bos) generation["bos_token_id"] = bos;
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), generation.ToJsonString(indented));
        using var scope = NewDisposeScope();
        var state = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous());
        using var stream = new FileStream(Path.Combine(directory, "model.safetensors"), FileMode.Create, FileAccess.Write);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(stream, state);
    }

    /// <summary>Every tensor the directory's safetensors files hold, from their headers (data not read).</summary>
    public static IReadOnlyList<TensorEntry> ReadEntries(string directory)
    {
        var single = Path.Combine(directory, "model.safetensors");
        var index = Path.Combine(directory, "model.safetensors.index.json");
        if (File.Exists(single)) return ReadHeader(single);
        if (!File.Exists(index))
            throw new ModelLoadException(single, null, "missing: neither model.safetensors nor model.safetensors.index.json is in the directory (PrefTune reads safetensors, not pytorch_model.bin)");
        JsonObject weightMap;
        try { weightMap = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject ?? throw new JsonException("no weight_map object"); }
        catch (JsonException e) { throw new ModelLoadException(index, null, "not a safetensors index: " + e.Message); }
        var shards = weightMap.Select(kv => kv.Value!.GetValue<string>()).Distinct().Select(f => Path.Combine(directory, f)).ToList();
        var entries = new List<TensorEntry>();
        foreach (var shard in shards)
        {
            if (!File.Exists(shard)) throw new ModelLoadException(shard, null, $"missing: {index} names this shard");
            entries.AddRange(ReadHeader(shard));
        }
        foreach (var (name, file) in weightMap)
            if (!entries.Any(e => e.Name == name))
                throw new ModelLoadException(Path.Combine(directory, file!.GetValue<string>()), name, "missing: the index lists it in this shard");
        return entries;
    }

    /// <summary>
    /// A safetensors header: u64 little-endian length N, N bytes of JSON {name: {dtype, shape, data_offsets}} (and
    /// __metadata__), then the data. Checks each tensor's byte range against its shape, dtype and the file's length.
    /// </summary>
    public static IReadOnlyList<TensorEntry> ReadHeader(string file)
    {
        using var stream = File.OpenRead(file);
        var lengthBytes = new byte[8];
        if (stream.Read(lengthBytes) != 8) throw new ModelLoadException(file, null, "too short for a safetensors header");
        var length = BitConverter.ToUInt64(lengthBytes);
        if (length > (ulong)(stream.Length - 8)) throw new ModelLoadException(file, null, $"header length {length} exceeds the file ({stream.Length} bytes): not a safetensors file");
        var headerBytes = new byte[length];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try { header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw new ModelLoadException(file, null, "unreadable safetensors header: " + e.Message); }
        var dataLength = stream.Length - 8 - (long)length;
        var entries = new List<TensorEntry>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            var dtype = node?["dtype"]?.GetValue<string>() ?? throw new ModelLoadException(file, name, "no dtype in the header");
            var shape = (node["shape"] as JsonArray)?.Select(d => d!.GetValue<long>()).ToArray() ?? throw new ModelLoadException(file, name, "no shape in the header");
            var offsets = (node["data_offsets"] as JsonArray)?.Select(d => d!.GetValue<long>()).ToArray() ?? throw new ModelLoadException(file, name, "no data_offsets in the header");
            var elementSize = dtype switch { "F64" or "I64" or "U64" => 8, "F32" or "I32" or "U32" => 4, "F16" or "BF16" or "I16" or "U16" => 2, _ => 1 };
            var bytes = shape.Aggregate(1L, (a, d) => a * d) * elementSize;
            if (offsets.Length != 2 || offsets[1] - offsets[0] != bytes || offsets[1] > dataLength)
                throw new ModelLoadException(file, name, $"data_offsets [{string.Join(", ", offsets)}] do not hold {dtype} {Shape(shape)} within the file's {dataLength} data bytes");
            entries.Add(new TensorEntry(name, dtype, shape, file));
        }
        return entries;
    }

    /// <summary>
    /// Matches a checkpoint's tensors to the model's state dict: every one present, of the model's shape, in a float
    /// dtype. Returns the entries to read. Buffers HF files may carry (rotary inv_freq, GPT-NeoX's causal-mask
    /// attention.bias / masked_bias, a tied model's lm_head copy) are ignored; any other extra tensor is an error,
    /// since it means the file is not the architecture config.json names.
    /// </summary>
    public static IReadOnlyList<TensorEntry> Check(LanguageModel model, IReadOnlyDictionary<string, TensorEntry> available, LanguageModelConfig config, string fileForMissing)
    {
        var wanted = new List<TensorEntry>();
        foreach (var (name, tensor) in model.state_dict())
        {
            if (!available.TryGetValue(name, out var entry))
                throw new ModelLoadException(fileForMissing, name,
                    $"missing: {config.Architecture} needs it with shape {Shape(tensor.shape)}");
            if (!entry.Shape.SequenceEqual(tensor.shape))
                throw new ModelLoadException(entry.File, name, $"shape {Shape(entry.Shape)} does not match {Shape(tensor.shape)} that config.json implies");
            if (!FloatDtypes.Contains(entry.Dtype))
                throw new ModelLoadException(entry.File, name, $"dtype {entry.Dtype} cannot be read (PrefTune reads {string.Join(", ", FloatDtypes)})");
            wanted.Add(entry);
        }
        var known = model.state_dict().Keys.ToHashSet();
        foreach (var entry in available.Values)
            if (!known.Contains(entry.Name) && !Ignorable(entry.Name, config))
                throw new ModelLoadException(entry.File, entry.Name, $"unexpected: {config.Architecture} has no such tensor (is config.json the file's architecture?)");
        return wanted;
    }

    private static bool Ignorable(string name, LanguageModelConfig config) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || name.EndsWith(".attention.bias", StringComparison.Ordinal)
        || name.EndsWith(".attention.masked_bias", StringComparison.Ordinal)
        || (config.TieWordEmbeddings && name == "lm_head.weight");

    public static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}

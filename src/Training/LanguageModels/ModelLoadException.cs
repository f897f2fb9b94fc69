namespace PrefTune.Training.LanguageModels;

/// <summary>
/// A model or tokenizer file that cannot be used: unknown architecture, a missing or misshapen tensor, a dtype
/// that cannot be read, a truncated file. Thrown while loading, before anything runs; names the file and, where
/// one is at fault, the tensor, so that the command line can print it and exit with status 2.
/// </summary>
public sealed class ModelLoadException(string file, string? tensor, string problem)
    : Exception($"{file}: {(tensor is null ? "" : $"tensor '{tensor}': ")}{problem}")
{
    /// <summary>The file at fault (config.json, a safetensors shard, a llama2.c checkpoint, a tokenizer).</summary>
    public string File { get; } = file;

    /// <summary>The tensor at fault, when there is one.</summary>
    public string? Tensor { get; } = tensor;

    /// <summary>What is wrong, without the file and tensor.</summary>
    public string Problem { get; } = problem;
}

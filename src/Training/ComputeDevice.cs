using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Training;

/// <summary>
/// The <c>device</c> setting, resolved in one place: <c>cpu</c> (the default) or <c>cuda</c> / <c>cuda:N</c> where
/// the CUDA build of libtorch runs (<c>dotnet build -p:TorchBackend=cuda</c>). An explicit setting (a command's
/// --device) wins; else PREFTUNE_DEVICE; else cpu. Language models load onto it and every tensor generation makes
/// follows the model's device.
/// </summary>
public static class ComputeDevice
{
    public const string Variable = "PREFTUNE_DEVICE";

    /// <summary>What a command's --device option says (one text for every command that has one).</summary>
    public const string OptionHelp = "cpu, cuda or cuda:N (cuda needs the CUDA build). Default: PREFTUNE_DEVICE, else cpu";

    /// <summary>The libtorch backend this build links (the TorchBackend MSBuild property, stamped into the assembly).</summary>
    public static string Backend { get; } =
        typeof(ComputeDevice).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "TorchBackend")?.Value ?? "cpu";

    /// <summary>The device <paramref name="setting"/> names (null: PREFTUNE_DEVICE, else cpu); cuda without a usable GPU is an error, never a silent cpu.</summary>
    public static Device Resolve(string? setting = null) => Resolve(setting, Environment.GetEnvironmentVariable(Variable));

    /// <summary>As <see cref="Resolve(string?)"/>, with PREFTUNE_DEVICE's value given (tests pass it rather than set it process-wide).</summary>
    public static Device Resolve(string? setting, string? environment)
    {
        var name = (string.IsNullOrWhiteSpace(setting) ? environment : setting)?.Trim().ToLowerInvariant();
        var source = string.IsNullOrWhiteSpace(setting) ? $" (from {Variable})" : "";
        if (string.IsNullOrEmpty(name) || name == "cpu") return CPU;
        var index = name == "cuda" ? 0
            : name.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(name[5..], out var i) && i >= 0 ? i
            : throw new ArgumentException($"device '{name}'{source} is not one PrefTune knows: cpu, cuda or cuda:N");
        if (!cuda.is_available())
            throw new ArgumentException($"device '{name}'{source}: CUDA is not available here (this build's libtorch backend is {Backend}; "
                + "build with -p:TorchBackend=cuda on a machine with an NVIDIA GPU and driver, or use device cpu)");
        if (index >= cuda.device_count())
            throw new ArgumentException($"device '{name}'{source}: this machine has {cuda.device_count()} CUDA device(s), numbered from 0");
        return new Device(DeviceType.CUDA, index);
    }
}

using System.Runtime.InteropServices;

namespace PrefTune.Orchestrator.Runs;

/// <summary>
/// What bit-for-bit reproduction of a run depends on besides its spec: the numerical libraries, the CPU their
/// kernels were chosen for, and the thread count. Recorded in RunStarted; a replay lists every difference.
/// </summary>
public static class RunEnvironment
{
    public static IReadOnlyDictionary<string, string> Current(int torchThreads) => new Dictionary<string, string>
    {
        ["torchsharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "unknown",
        ["dotnet"] = RuntimeInformation.FrameworkDescription,
        ["os"] = RuntimeInformation.OSDescription,
        ["arch"] = RuntimeInformation.ProcessArchitecture.ToString(),
        ["cpu"] = CpuModel(),
        ["torch_threads"] = torchThreads.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Keys whose recorded value differs from this machine's, as "key: recorded → here".</summary>
    public static IReadOnlyList<string> Differences(IReadOnlyDictionary<string, string> recorded, int torchThreads)
    {
        if (recorded.Count == 0) return ["the run recorded no environment (recorded before PrefTune kept one)"];
        var here = Current(torchThreads);
        return here.Where(p => !recorded.TryGetValue(p.Key, out var then) || then != p.Value)
            .Select(p => $"{p.Key}: {recorded.GetValueOrDefault(p.Key, "(not recorded)")} -> {p.Value}").ToList();
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
            return line?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}

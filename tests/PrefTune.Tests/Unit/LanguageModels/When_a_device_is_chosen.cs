using PrefTune.Tests.Integration.Cli;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// The device setting: cpu by default, PREFTUNE_DEVICE when no explicit setting, and cuda an error (never a silent
/// cpu) where libtorch sees no GPU, as on the CPU build these tests run on.
/// </summary>
public class When_a_device_is_chosen
{
    [Fact]
    public void Cpu_is_the_default_and_an_explicit_setting_beats_the_environment()
    {
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve(null, null).type);
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve(" CPU ", null).type);
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve(null, "cpu").type);
        Assert.Equal(DeviceType.CPU, ComputeDevice.Resolve("cpu", "cuda").type);
    }

    [Theory]
    [InlineData("cuda", null)]
    [InlineData(null, "cuda:0")]
    public void Cuda_is_used_only_where_it_exists(string? setting, string? environment)
    {
        if (cuda.is_available())
        {
            Assert.Equal(DeviceType.CUDA, ComputeDevice.Resolve(setting, environment).type);
            return;
        }
        var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Resolve(setting, environment));
        Assert.Contains("CUDA is not available", e.Message);
        Assert.Contains($"backend is {ComputeDevice.Backend}", e.Message);
        if (setting is null) Assert.Contains(ComputeDevice.Variable, e.Message);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    public void An_unknown_device_names_the_allowed_ones(string setting)
    {
        var e = Assert.Throws<ArgumentException>(() => ComputeDevice.Resolve(setting, null));
        Assert.Contains($"'{setting}'", e.Message);
        Assert.Contains("cpu, cuda or cuda:N", e.Message);
    }

    [Fact]
    public void A_model_loaded_for_the_cpu_generates_there()
    {
        TorchRuntime.UseThreads(1);
        using var model = Checkpoints.Load(Fixtures.StoriesBin, CPU);
        Assert.All(model.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
        var expected = Fixtures.Ints(Fixtures.Expected(Fixtures.Stories)["greedy_ids"]);
        Assert.Equal(expected[..10], Fixtures.Greedy(model, Fixtures.Ints(Fixtures.Expected(Fixtures.Stories)["prompt_ids"]), 10));
    }

    [Fact]
    public async Task Generate_on_cuda_without_a_gpu_exits_2_saying_why()
    {
        if (cuda.is_available()) return;   // the error under test cannot happen on a machine with a GPU
        var (code, output, error) = await PrefTuneProcess.RunAsync("unused", "unused",
            "generate", Fixtures.StoriesBin, "--prompt-ids", "1", "--max-new-tokens", "2", "--device", "cuda");
        Assert.Equal(2, code);
        Assert.Contains("CUDA is not available", error);
        Assert.Equal("", output);
    }

    [Fact]
    public async Task Generate_on_the_cpu_gives_the_golden_ids()
    {
        var expected = Fixtures.Expected(Fixtures.Stories);
        var (code, output, error) = await PrefTuneProcess.RunAsync("unused", "unused",
            "generate", Fixtures.StoriesBin, "--prompt-ids", string.Join(",", Fixtures.Ints(expected["prompt_ids"])),
            "--temperature", "0", "--max-new-tokens", "10", "--device", "cpu", "--json");
        Assert.True(code == 0, error);
        var ids = Fixtures.Ints(System.Text.Json.Nodes.JsonNode.Parse(output)!["samples"]![0]!["ids"]);
        Assert.Equal(Fixtures.Ints(expected["greedy_ids"])[..10], ids);
    }
}

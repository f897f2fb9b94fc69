using Xunit;
using System.Text.Json.Nodes;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// The model fixtures in ../shared/models (beside the repository, read in place, never copied): stories260K (llama2.c's
/// own outputs) and the tiny random GPT-NeoX, Llama and reward models (Hugging Face transformers' outputs).
/// </summary>
public static class Fixtures
{
    /// <summary>PREFTUNE_TEST_MODELS if set (a clone elsewhere), else ../shared/models beside the repository; a folder
    /// that is not there fails the test saying where it looked, rather than as a missing expected.json.</summary>
    public static string Models
    {
        get
        {
            var folder = Environment.GetEnvironmentVariable("PREFTUNE_TEST_MODELS") is { Length: > 0 } given
                ? Path.GetFullPath(given)
                : Path.GetFullPath(Path.Combine(ExperimentText.RepositoryRoot(), "..", "shared", "models"));
            return Directory.Exists(folder) ? folder
                : throw new DirectoryNotFoundException($"model fixtures not found at {folder}: clone beside shared/ or set PREFTUNE_TEST_MODELS");
        }
    }
    public static string Stories => Path.Combine(Models, "stories260K");
    public static string StoriesHf => Path.Combine(Stories, "hf");
    public static string StoriesBin => Path.Combine(Stories, "llama2c", "stories260K.bin");
    public static string StoriesTokenizerBin => Path.Combine(Stories, "llama2c", "tok512.bin");

    /// <summary>The tiny HF fixtures by name (tiny-gpt-neox-seq lives inside tiny-gpt-neox/).</summary>
    public static string Tiny(string name) =>
        name == "tiny-gpt-neox-seq" ? Path.Combine(Models, "tiny-gpt-neox", name) : Path.Combine(Models, name);

    public static JsonObject Expected(string folder) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "expected.json")))!;

    public static int[] Ints(JsonNode? node) => ((JsonArray)node!).Select(x => x!.GetValue<int>()).ToArray();

    /// <summary>A JSON array of arrays of doubles (each the exact float32 value) as float rows.</summary>
    public static float[][] Rows(JsonNode? node) =>
        ((JsonArray)node!).Select(r => ((JsonArray)r!).Select(x => (float)x!.GetValue<double>()).ToArray()).ToArray();

    /// <summary>Loads a model with one torch thread (deterministic, the services' default).</summary>
    public static LanguageModel Load(string path)
    {
        TorchRuntime.UseThreads(1);
        return Checkpoints.Load(path);
    }

    /// <summary>Logits of one unpadded sequence at every position: (T, V) as rows.</summary>
    public static float[][] Logits(LanguageModel model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]))[0];   // (T, V)
        return Enumerable.Range(0, ids.Length).Select(t => logits[t].data<float>().ToArray()).ToArray();
    }

    /// <summary>The largest |a - b| over two equally shaped row sets.</summary>
    public static double MaxDiff(float[][] a, float[][] b)
    {
        Assert.Equal(a.Length, b.Length);
        var max = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            Assert.Equal(a[i].Length, b[i].Length);
            for (var j = 0; j < a[i].Length; j++) max = Math.Max(max, Math.Abs(a[i][j] - b[i][j]));
        }
        return max;
    }

    public static int[] Greedy(LanguageModel model, int[] prompt, int newTokens, bool useCache = true) =>
        TextGeneration.Generate(model, [prompt], new SamplingSettings { MaxNewTokens = newTokens, Temperature = 0, UseCache = useCache })[0].Ids;
}

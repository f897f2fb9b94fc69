using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrefTune.Training.Toy;

namespace PrefTune.Orchestrator.Toy;

/// <summary>Writes the toy's results folder: toy.json (inputs and both trajectories) and toy.png.</summary>
public static class ToyReport
{
    public const string Json = "toy.json";
    public const string Png = "toy.png";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <returns>The paths of the files written, in the order above.</returns>
    public static IReadOnlyList<string> Write(string folder, ToyExperiment experiment, ToyResult result)
    {
        Directory.CreateDirectory(folder);
        var json = Path.Combine(folder, Json);
        var png = Path.Combine(folder, Png);
        File.WriteAllText(json, ToJson(experiment, result));
        ModeSeekingPlot.Write(png, Title(result.Spec), result);
        return [json, png];
    }

    public static string Title(ModeSeekingToySpec spec) =>
        $"Descending KL(p||q) and KL(q||p) from p0: lr {spec.LearningRate:0.###}, {spec.Steps} step{(spec.Steps == 1 ? "" : "s")}";

    /// <summary>
    /// The inputs and, per objective (named "KL(p||q)" / "KL(q||p)"), p and the divergence at every step,
    /// step 0 being p0. <paramref name="output"/>, when given, records where the files went.
    /// </summary>
    public static string ToJson(ToyExperiment experiment, ToyResult result, string? output = null)
    {
        var spec = result.Spec;
        var root = new JsonObject
        {
            ["name"] = experiment.Name,
            ["description"] = experiment.Description,
            ["p0"] = Array(spec.P0),
            ["q"] = Array(spec.Q),
            ["learning_rate"] = spec.LearningRate,
            ["steps"] = spec.Steps,
            ["objectives"] = new JsonArray(result.Trajectories.Select(t => (JsonNode)new JsonObject
            {
                ["objective"] = t.Name,
                ["behaviour"] = t.Objective.Behaviour(),
                ["final_p"] = Array(t.Final),
                ["trajectory"] = new JsonArray(t.Points.Select(point => (JsonNode)new JsonObject
                {
                    ["step"] = point.Step,
                    ["p"] = Array(point.P),
                    ["kl"] = point.Kl,
                }).ToArray()),
            }).ToArray()),
        };
        if (output is not null)
            root["output"] = output;
        return root.ToJsonString(Indented);
    }

    private static JsonArray Array(IEnumerable<double> values) => new(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
}

using System.Buffers.Binary;
using System.Text.Json.Nodes;
using PrefTune.Orchestrator.Toy;
using PrefTune.Training.Toy;
using Xunit;

namespace PrefTune.Tests.Unit.Toy;

public sealed class Writing_the_toy_report : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "preftune-toy-" + Guid.NewGuid().ToString("N"));
    private static readonly ToyExperiment Experiment = new() { Name = "toy-kl", Description = "the paper's case", Toy = PaperToy.Spec };
    private static readonly ToyResult Result = ModeSeekingToy.Run(PaperToy.Spec);

    public void Dispose()
    {
        if (Directory.Exists(_folder))
            Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public void Writes_toy_json_and_toy_png_into_a_new_folder()
    {
        var files = ToyReport.Write(_folder, Experiment, Result);

        Assert.Equal(["toy.json", "toy.png"], files.Select(Path.GetFileName));
        Assert.All(files, f => Assert.True(File.Exists(f), f));
    }

    [Fact]
    public void Draws_a_900_by_500_png()
    {
        var bytes = File.ReadAllBytes(ToyReport.Write(_folder, Experiment, Result)[1]);

        Assert.Equal(PngSignature, bytes[..8]);
        Assert.Equal(900, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)));
        Assert.Equal(500, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4)));
    }

    [Fact]
    public void Json_holds_the_inputs_and_both_trajectories_named_by_their_arguments()
    {
        var json = JsonNode.Parse(File.ReadAllText(ToyReport.Write(_folder, Experiment, Result)[0]))!;

        Assert.Equal([0.3, 0.3, 0.1, 0.3], Numbers(json["p0"]));
        Assert.Equal([0.2, 0.1, 0.6, 0.1], Numbers(json["q"]));
        Assert.Equal(0.95, json["learning_rate"]!.GetValue<double>());
        Assert.Equal(3, json["steps"]!.GetValue<int>());
        var objectives = json["objectives"]!.AsArray();
        Assert.Equal(["KL(p||q)", "KL(q||p)"], objectives.Select(o => o!["objective"]!.GetValue<string>()));
        foreach (var (objective, paper) in objectives.Zip([PaperToy.AfterKlPToQ, PaperToy.AfterKlQToP]))
        {
            var trajectory = objective!["trajectory"]!.AsArray();
            Assert.Equal(4, trajectory.Count);
            Assert.Equal([0.3, 0.3, 0.1, 0.3], Numbers(trajectory[0]!["p"]), (x, y) => Math.Abs(x - y) < 1e-12);   // softmax(log p0)
            Assert.All(paper.Zip(Numbers(objective["final_p"])), e => Assert.Equal(e.First, e.Second, 0.005));
            Assert.Equal(Numbers(objective["final_p"]), Numbers(trajectory[3]!["p"]));
        }
    }

    [Fact]
    public void Json_for_stdout_also_says_where_the_files_went()
    {
        var json = JsonNode.Parse(ToyReport.ToJson(Experiment, Result, "out/toy-kl-1"))!;

        Assert.Equal("out/toy-kl-1", json["output"]!.GetValue<string>());
    }

    [Fact]
    public void Plot_title_names_the_learning_rate_and_steps()
    {
        Assert.Equal("Descending KL(p||q) and KL(q||p) from p0: lr 0.95, 3 steps", ToyReport.Title(PaperToy.Spec));
    }

    private static double[] Numbers(JsonNode? node) => node!.AsArray().Select(n => n!.GetValue<double>()).ToArray();
}

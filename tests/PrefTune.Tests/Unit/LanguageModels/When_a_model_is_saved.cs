using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>A model saved as a Hugging Face directory loads back to the same logits, bit for bit.</summary>
public sealed class When_a_model_is_saved : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("preftune-lm-save-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    public static TheoryData<string> Models => new() { "stories260K.bin", "tiny-gpt-neox", "tiny-llama", "tiny-gpt-neox-rm" };

    [Theory]
    [MemberData(nameof(Models))]
    public void It_loads_back_as_a_hugging_face_directory_with_identical_outputs(string name)
    {
        var source = name == "stories260K.bin" ? Fixtures.StoriesBin : Fixtures.Tiny(name);
        using var model = Fixtures.Load(source);
        Checkpoints.SaveHf(model, dir);
        Assert.True(File.Exists(Path.Combine(dir, "config.json")));
        using var loaded = Fixtures.Load(dir);
        Assert.Equal(model.Config.Architecture, loaded.Config.Architecture);
        Assert.Equal(model.Config.StopIds, loaded.Config.StopIds);
        Assert.Equal(model.state_dict().Keys.Order(), Checkpoints.ReadHeader(Path.Combine(dir, "model.safetensors")).Select(e => e.Name).Order());
        int[] ids = [3, 17, 42, 5, 11, 60, 2, 9];
        Assert.Equal(0, Fixtures.MaxDiff(Fixtures.Logits(model, ids), Fixtures.Logits(loaded, ids)));
        if (name == "stories260K.bin")
        {
            // llama2.c's shared classifier is written as HF writes a tied model: no lm_head.weight in the file.
            Assert.True(loaded.Config.TieWordEmbeddings);
            Assert.Equal([Llama2cCheckpoint.StopId], loaded.Config.StopIds);
            Assert.DoesNotContain(Checkpoints.ReadHeader(Path.Combine(dir, "model.safetensors")), e => e.Name == "lm_head.weight");
        }
    }
}

using PrefTune.Training.LanguageModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

public class When_generation_runs_repeatedly
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void It_leaves_no_live_tensors_behind(bool useCache)
    {
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-llama"));
        int[][] prompts = [[5, 6, 7], [8, 9, 10, 11, 12]];
        void Generate(long seed) => TextGeneration.Generate(model, prompts,
            new SamplingSettings { MaxNewTokens = 12, Temperature = 1, TopK = 10, TopP = 0.9, Samples = 2, Seed = seed, UseCache = useCache, StopIds = [2] });

        Generate(0);
        DisposeScopeManager.Statistics.Reset();
        Generate(1);
        var afterOne = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 10; i++) Generate(2 + i);
        Assert.Equal(afterOne, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

using PrefTune.Messages;
using PrefTune.Orchestrator.Bench;
using PrefTune.Orchestrator.Hosting;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>`preftune bench`'s direct loop is the run's Algorithm 1 without the bus and the event store.</summary>
[Collection(ServersCollection.Name)]
public sealed class When_the_bench_runs_the_model_work_directly(PostgresServer postgres)
{
    [Theory]
    [InlineData("dpo", DataSource.Online)]
    [InlineData("dpo", DataSource.Offline)]
    public async Task It_gives_the_pipelines_numbers(string method, DataSource data)
    {
        var spec = TinyRuns.Bandit(method, data);
        var options = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = "t_" + Guid.NewGuid().ToString("N")[..12], StageTimeoutSeconds = 60 };
        Orchestrator.Runs.RunOutcome pipeline;
        await using (var session = await PipelineSession.StartAsync(options, ServiceHosting.InProcess, CancellationToken.None))
            pipeline = await session.RunAsync(spec, null, CancellationToken.None);

        var direct = await DirectLoop.RunAsync(spec, CancellationToken.None);

        Assert.Equal("completed", pipeline.Status);
        Assert.NotEmpty(direct.Updates);
        Assert.Equal(pipeline.Updates.Select(u => u.Loss), direct.Updates.Select(u => u.Loss));
        Assert.Equal(pipeline.Evaluations.Select(e => e.MeanGoldReward), direct.Evaluations.Select(e => e.MeanGoldReward));
        Assert.Equal(pipeline.SamplesDrawn, direct.SamplesDrawn);
    }
}

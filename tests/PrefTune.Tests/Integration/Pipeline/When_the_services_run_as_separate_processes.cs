using PrefTune.Messages;
using PrefTune.Orchestrator.Hosting;
using PrefTune.ServiceDefaults;
using PrefTune.Tests.Integration.Servers;
using Xunit;

namespace PrefTune.Tests.Integration.Pipeline;

/// <summary>The four services as four processes over a real RabbitMQ.</summary>
[Collection(ServersCollection.Name)]
public sealed class When_the_services_run_as_separate_processes(PostgresServer postgres, RabbitMqServer rabbit)
{
    [Fact]
    public async Task A_run_gives_the_same_numbers_as_in_one_process()
    {
        var spec = TinyRuns.Bandit("dpo", DataSource.Online);
        var schema = "t_" + Guid.NewGuid().ToString("N")[..12];
        var local = new PrefTuneOptions { Database = postgres.ConnectionString, Schema = schema, StageTimeoutSeconds = 60 };
        var data = Directory.CreateTempSubdirectory("preftune-test-").FullName;
        var distributed = local with { Broker = rabbit.AmqpUri, DataFolder = data };

        Orchestrator.Runs.RunOutcome inProcess, overBroker;
        await using (var session = await PipelineSession.StartAsync(local, ServiceHosting.InProcess, CancellationToken.None))
            inProcess = await session.RunAsync(spec, null, CancellationToken.None);
        await using (var session = await PipelineSession.StartAsync(distributed, ServiceHosting.ChildProcesses, CancellationToken.None))
        {
            Assert.Equal(3, session.Children!.Processes.Count);
            Assert.All(session.Children.Processes, p => Assert.False(p.HasExited));
            overBroker = await session.RunAsync(spec, null, CancellationToken.None);
        }

        Assert.Equal("completed", overBroker.Status);
        Assert.Equal(inProcess.Evaluations.Select(e => e.MeanGoldReward), overBroker.Evaluations.Select(e => e.MeanGoldReward));
        Assert.Equal(inProcess.Updates.Select(u => u.Loss), overBroker.Updates.Select(u => u.Loss));
        Assert.Equal(inProcess.GradientSteps, overBroker.GradientSteps);
    }
}

using MassTransit;
using PrefTune.Messages;
using PrefTune.Orchestrator.Bench;
using Xunit;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>
/// `bench --data-plane` counts each message's serialized body once, under its type and purpose. The tally is fed
/// known sizes; the observer runs on a real in-memory bus and must count exactly the body its consumer received.
/// </summary>
public sealed class When_wire_bytes_are_tallied
{
    private static readonly CheckpointRef Policy = new() { Version = 0, Sha256 = "v0", Uri = "memory:v0", Bytes = 1 };

    private static RolloutsGenerated Generated(RolloutPurpose purpose, int rollouts = 1) => new()
    {
        RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Purpose = purpose, Iteration = 0, PolicyVersion = 0,
        Rollouts = Enumerable.Range(0, rollouts).Select(i => new Rollout
        {
            SampleId = Guid.NewGuid(), PromptId = "p", Group = 0, PromptTokens = [1], ResponseTokens = [i % 10],
            TokenLogProbs = [-1f], PolicyVersion = 0,
        }).ToList(),
    };

    [Fact]
    public void Each_type_and_purpose_gets_its_own_bytes_and_the_sums_agree()
    {
        var tally = new WireTally();
        tally.Count(Guid.NewGuid(), Generated(RolloutPurpose.Training), 100);
        tally.Count(Guid.NewGuid(), Generated(RolloutPurpose.Training), 50);
        tally.Count(Guid.NewGuid(), Generated(RolloutPurpose.Evaluation), 1000);
        tally.Count(Guid.NewGuid(), Generated(RolloutPurpose.Dataset), 7);
        tally.Count(Guid.NewGuid(), new CheckpointPublished { RunId = Guid.NewGuid(), Checkpoint = Policy }, 3);
        tally.Count(null, new PingServices { RequestId = Guid.NewGuid() }, 2);

        Assert.Contains(new WireRow("RolloutsGenerated", WirePurpose.Training, 2, 150), tally.Rows);
        Assert.Contains(new WireRow("RolloutsGenerated", WirePurpose.Evaluation, 1, 1000), tally.Rows);
        Assert.Contains(new WireRow("RolloutsGenerated", WirePurpose.Dataset, 1, 7), tally.Rows);
        Assert.Contains(new WireRow("CheckpointPublished", WirePurpose.Training, 1, 3), tally.Rows);
        Assert.Contains(new WireRow("PingServices", WirePurpose.Control, 1, 2), tally.Rows);
        Assert.Equal(1162, tally.TotalBytes);
        Assert.Equal(6, tally.TotalMessages);
        Assert.Equal(tally.TotalBytes, tally.Rows.Sum(r => r.Bytes));
        Assert.Equal(tally.TotalBytes, Enum.GetValues<WirePurpose>().Sum(tally.Bytes));
        Assert.Equal(153, tally.Bytes(WirePurpose.Training));
        Assert.Equal("RolloutsGenerated", tally.Rows[0].MessageType);
    }

    [Fact]
    public void A_message_seen_twice_is_counted_once()
    {
        var tally = new WireTally();
        var id = Guid.NewGuid();
        var message = Generated(RolloutPurpose.Training);

        Assert.True(tally.Count(id, message, 100));
        Assert.False(tally.Count(id, message, 100));

        Assert.Equal(new WireRow("RolloutsGenerated", WirePurpose.Training, 1, 100), Assert.Single(tally.Rows));
    }

    [Fact]
    public void A_fault_is_named_by_its_message()
    {
        Assert.Equal("Fault<SampleRollouts>", WireTally.TypeName(typeof(Fault<SampleRollouts>)));
        Assert.Equal(WirePurpose.Control, WireTally.PurposeOf(new object()));
    }

    [Fact]
    public void Zero_samples_give_no_number_rather_than_a_division_by_zero()
    {
        Assert.Null(PerSample.Of(1000, 0));
        Assert.Equal("-", PerSample.Format(PerSample.Of(1000, 0)));
        Assert.Equal(250, PerSample.Of(1000, 4));
        Assert.Equal("250", PerSample.Format(PerSample.Of(1000, 4)));
    }

    [Fact]
    public async Task The_observer_counts_the_body_the_consumer_received_once()
    {
        var received = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var bus = Bus.Factory.CreateUsingInMemory(cfg => cfg.ReceiveEndpoint("wire-tally", e =>
            e.Handler<RolloutsGenerated>(context =>
            {
                received.TrySetResult(context.ReceiveContext.Body.GetBytes().Length);
                return Task.CompletedTask;
            })));
        var tally = new WireTally();
        await bus.StartAsync();
        try
        {
            using (WireObserver.Connect(bus, tally))
            {
                await bus.Publish(Generated(RolloutPurpose.Evaluation, rollouts: 20));
                var bytes = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));

                // Sent, published and consumed: three observers, one message, the transport's own byte count.
                var row = Assert.Single(tally.Rows);
                Assert.Equal(new WireRow("RolloutsGenerated", WirePurpose.Evaluation, 1, bytes), row);
                Assert.True(bytes > 20 * 16, $"{bytes} B cannot hold 20 rollouts' ids");
            }
        }
        finally
        {
            await bus.StopAsync();
        }
    }
}

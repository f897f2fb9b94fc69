using System.Collections.Concurrent;
using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Runs;

/// <summary>Which service roles have answered a ping: a run starts only once sampler, scorer and learner are consuming.</summary>
public sealed class ServiceDirectory(IPublishEndpoint publish)
{
    public static readonly IReadOnlyList<string> RequiredRoles = ["sampler", "scorer", "learner"];
    private readonly ConcurrentDictionary<string, ServiceAvailable> _seen = new();

    public void Saw(ServiceAvailable service) => _seen[service.Role] = service;

    /// <summary>Pings every second until every role answered, or fails naming the missing roles.</summary>
    public async Task WaitForAsync(IReadOnlyList<string> roles, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var missing = roles.Where(r => !_seen.ContainsKey(r)).ToList();
            if (missing.Count == 0) return;
            if (DateTime.UtcNow > deadline)
                throw new StageException("orchestrator", $"no {string.Join(", ", missing)} service answered within {timeout.TotalSeconds:0} s; start them with `preftune serve {string.Join(' ', missing)}` against the same broker");
            await publish.Publish(new PingServices { RequestId = NewId.NextGuid() }, ct);
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
        }
    }
}

/// <summary>Hears services announcing themselves (a temporary queue per Orchestrator, so every Orchestrator hears them).</summary>
public sealed class ServiceAvailableConsumer(ServiceDirectory directory) : IConsumer<ServiceAvailable>
{
    public Task Consume(ConsumeContext<ServiceAvailable> context)
    {
        directory.Saw(context.Message);
        return Task.CompletedTask;
    }
}

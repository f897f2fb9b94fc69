using MassTransit;
using PrefTune.Messages;

namespace PrefTune.ServiceDefaults;

/// <summary>
/// Answers <see cref="PingServices"/> for one role. Each role derives its own class so that each gets its
/// own queue: every role hears every ping, and any instance of a role may answer for it.
/// </summary>
public abstract class AnnounceServiceConsumer(string role) : IConsumer<PingServices>
{
    public Task Consume(ConsumeContext<PingServices> context) =>
        context.Publish(new ServiceAvailable
        {
            RequestId = context.Message.RequestId,
            Role = role,
            Host = Environment.MachineName,
            ProcessId = Environment.ProcessId,
        });
}

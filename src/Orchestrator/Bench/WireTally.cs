using System.Collections.Concurrent;
using MassTransit;
using PrefTune.Messages;

namespace PrefTune.Orchestrator.Bench;

/// <summary>What a message on the wire was for. Training, evaluation and dataset are the three
/// <see cref="RolloutPurpose"/>s (the Learner's requests and answers are training); setup is the run's policy
/// initialization; control is service discovery and faults.</summary>
public enum WirePurpose
{
    Training,
    Evaluation,
    Dataset,
    Setup,
    Control,
}

/// <summary>One message type and purpose: how many messages, and their serialized bodies' bytes.</summary>
public sealed record WireRow(string MessageType, WirePurpose Purpose, int Messages, long Bytes);

/// <summary>
/// Serialized body bytes per message type and purpose. Each message is counted once by its MessageId, however many
/// observers see it: in one process a request is seen when sent and again when consumed, a publish by send and publish
/// observers both; across processes the Orchestrator sees its requests sent and the answers consumed, and the union is
/// what it can count. Thread-safe: with max_staleness K &gt; 0 sampling runs while the Learner trains.
/// </summary>
public sealed class WireTally
{
    private readonly ConcurrentDictionary<Guid, byte> _seen = new();
    private readonly ConcurrentDictionary<(string Type, WirePurpose Purpose), (int Messages, long Bytes)> _rows = new();

    /// <summary>Adds one message of <paramref name="bytes"/> serialized bytes; false (and nothing added) when a
    /// message with the same id was counted already.</summary>
    public bool Count(Guid? messageId, object message, long bytes)
    {
        if (messageId is { } id && !_seen.TryAdd(id, 0)) return false;
        _rows.AddOrUpdate((TypeName(message.GetType()), PurposeOf(message)), (1, bytes), (_, r) => (r.Messages + 1, r.Bytes + bytes));
        return true;
    }

    /// <summary>Rows by bytes, largest first.</summary>
    public IReadOnlyList<WireRow> Rows => _rows.Select(p => new WireRow(p.Key.Type, p.Key.Purpose, p.Value.Messages, p.Value.Bytes))
        .OrderByDescending(r => r.Bytes).ThenBy(r => r.MessageType, StringComparer.Ordinal).ToList();

    public long TotalBytes => _rows.Values.Sum(r => r.Bytes);
    public int TotalMessages => _rows.Values.Sum(r => r.Messages);
    public long Bytes(WirePurpose purpose) => _rows.Where(p => p.Key.Purpose == purpose).Sum(p => p.Value.Bytes);

    public static WirePurpose PurposeOf(object message) => message switch
    {
        SampleRollouts m => Of(m.Purpose),
        RolloutsGenerated m => Of(m.Purpose),
        ScoreRollouts m => Of(m.Purpose),
        RolloutsScored m => Of(m.Purpose),
        EvaluatePolicy or EvaluationSummarized => WirePurpose.Evaluation,
        TrainPolicy or PolicyTrained or CheckpointPublished => WirePurpose.Training,
        InitializePolicy or PolicyInitialized => WirePurpose.Setup,
        _ => WirePurpose.Control,
    };

    private static WirePurpose Of(RolloutPurpose purpose) => purpose switch
    {
        RolloutPurpose.Training => WirePurpose.Training,
        RolloutPurpose.Evaluation => WirePurpose.Evaluation,
        RolloutPurpose.Dataset => WirePurpose.Dataset,
        var other => throw new ArgumentOutOfRangeException(nameof(purpose), other, "unknown rollout purpose"),
    };

    /// <summary>"Fault&lt;SampleRollouts&gt;" rather than the CLR's "Fault`1".</summary>
    public static string TypeName(Type type) => !type.IsGenericType ? type.Name
        : $"{type.Name[..type.Name.IndexOf('`')]}<{string.Join(", ", type.GetGenericArguments().Select(TypeName))}>";
}

/// <summary>Bytes per sample, or null when there were no samples (an offline run replayed, a run that failed at once):
/// a bench prints "-" there rather than dividing by zero.</summary>
public static class PerSample
{
    public static double? Of(double total, int samples) => samples > 0 ? total / samples : null;

    public static string Format(double? value, string format = "N0") => value?.ToString(format) ?? "-";
}

/// <summary>
/// Feeds a <see cref="WireTally"/> from a bus: outgoing messages (send and publish) by the body length the transport
/// serialized, or, where a transport does not report it, by serializing again with the context's own serializer;
/// incoming ones by the body they arrived in. Connect it to <see cref="IBus"/> with <see cref="Connect"/>.
/// </summary>
public sealed class WireObserver(WireTally tally) : ISendObserver, IPublishObserver, IConsumeObserver
{
    /// <summary>Observes <paramref name="bus"/> until the returned handle is disposed.</summary>
    public static IDisposable Connect(IBus bus, WireTally tally)
    {
        var observer = new WireObserver(tally);
        return new Handles([bus.ConnectSendObserver(observer), bus.ConnectPublishObserver(observer), bus.ConnectConsumeObserver(observer)]);
    }

    public Task PostSend<T>(SendContext<T> context) where T : class
    {
        tally.Count(context.MessageId, context.Message, context.BodyLength ?? context.Serializer.GetMessageBody(context).GetBytes().Length);
        return Task.CompletedTask;
    }

    public Task PostPublish<T>(PublishContext<T> context) where T : class => PostSend(context);

    public Task PreConsume<T>(ConsumeContext<T> context) where T : class
    {
        // Counted before the consumer runs: a consumer that fails was still carried.
        tally.Count(context.MessageId, context.Message, context.ReceiveContext.Body.GetBytes().Length);
        return Task.CompletedTask;
    }

    public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;
    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    public Task PrePublish<T>(PublishContext<T> context) where T : class => Task.CompletedTask;
    public Task PublishFault<T>(PublishContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    public Task PostConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;
    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Task.CompletedTask;

    private sealed class Handles(IReadOnlyList<ConnectHandle> handles) : IDisposable
    {
        public void Dispose()
        {
            foreach (var handle in handles) handle.Disconnect();
        }
    }
}

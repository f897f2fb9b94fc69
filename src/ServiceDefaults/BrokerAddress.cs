using System.Net.Sockets;

namespace PrefTune.ServiceDefaults;

/// <summary>A parsed amqp:// address. Credentials stay out of <see cref="ToString"/> so it can be logged and recorded.</summary>
public sealed record BrokerAddress(string Host, int Port, string VirtualHost, string Username, string Password)
{
    public static BrokerAddress Parse(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || (parsed.Scheme != "amqp" && parsed.Scheme != "rabbitmq"))
            throw new ArgumentException($"broker: '{Redact(uri)}' is not an amqp:// address (expected amqp://user:password@host:port/vhost)");
        var credentials = parsed.UserInfo.Split(':', 2);
        var user = credentials[0].Length > 0 ? Uri.UnescapeDataString(credentials[0]) : "guest";
        var password = credentials.Length > 1 ? Uri.UnescapeDataString(credentials[1]) : "guest";
        var vhost = parsed.AbsolutePath.Trim('/');
        return new BrokerAddress(parsed.Host, parsed.IsDefaultPort || parsed.Port < 0 ? 5672 : parsed.Port,
            vhost.Length == 0 ? "/" : Uri.UnescapeDataString(vhost), user, password);
    }

    public override string ToString() => $"amqp://{Host}:{Port}/{(VirtualHost == "/" ? "" : VirtualHost)}";

    /// <summary>Fails within <paramref name="timeout"/> with the address when nothing listens there
    /// (MassTransit itself would retry for its whole start timeout before saying so).</summary>
    public async Task EnsureReachableAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await client.ConnectAsync(Host, Port, cts.Token);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            var why = e is SocketException s ? s.SocketErrorCode.ToString() : $"no answer within {timeout.TotalSeconds:0.#} s";
            throw new InvalidOperationException($"cannot reach the RabbitMQ broker at {this} ({why})", e);
        }
    }

    private static string Redact(string uri)
    {
        var at = uri.IndexOf('@');
        var scheme = uri.IndexOf("://", StringComparison.Ordinal);
        return at > 0 && scheme >= 0 && at > scheme ? uri[..(scheme + 3)] + "***@" + uri[(at + 1)..] : uri;
    }
}

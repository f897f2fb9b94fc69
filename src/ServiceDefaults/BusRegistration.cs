using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace PrefTune.ServiceDefaults;

public static class BusRegistration
{
    /// <summary>Queue names are "preftune-" + the consumer's kebab-cased name: part of the wire contract.</summary>
    public const string EndpointPrefix = "preftune";

    /// <summary>
    /// One bus for whatever services this process hosts: in-memory when no broker is given, RabbitMQ otherwise.
    /// Each service adds its consumers through <paramref name="addConsumers"/>.
    /// </summary>
    public static IServiceCollection AddPrefTuneBus(this IServiceCollection services, PrefTuneOptions options,
        Action<IBusRegistrationConfigurator> addConsumers)
    {
        services.Configure<MassTransitHostOptions>(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(30);
            o.StopTimeout = TimeSpan.FromSeconds(10);
        });
        services.AddMassTransit(x =>
        {
            // MassTransit reports usage to its vendor over the internet by default; PrefTune never phones home.
            x.DisableUsageTelemetry();
            x.SetEndpointNameFormatter(new KebabCaseEndpointNameFormatter(EndpointPrefix, false));
            addConsumers(x);
            if (string.IsNullOrWhiteSpace(options.Broker))
            {
                x.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
                return;
            }
            var broker = BrokerAddress.Parse(options.Broker);
            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(broker.Host, (ushort)broker.Port, broker.VirtualHost, h =>
                {
                    h.Username(broker.Username);
                    h.Password(broker.Password);
                    h.RequestedConnectionTimeout(TimeSpan.FromSeconds(options.ConnectTimeoutSeconds));
                });
                cfg.PrefetchCount = 16;
                cfg.ConfigureEndpoints(context);
            });
        });
        return services;
    }
}

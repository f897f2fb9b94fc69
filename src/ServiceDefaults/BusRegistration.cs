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
                x.UsingInMemory((context, cfg) =>
                {
                    Compact(cfg);
                    RetryTransientFailures(cfg, options);
                    cfg.ConfigureEndpoints(context);
                });
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
                Compact(cfg);
                RetryTransientFailures(cfg, options);
                cfg.ConfigureEndpoints(context);
            });
        });
        return services;
    }

    /// <summary>
    /// Messages as compact JSON. MassTransit indents by default, which writes a prompt's token array one number per line:
    /// a language-model SampleRollouts was 14 KB indented against 5 KB compact (bench --data-plane). Readers take either.
    /// </summary>
    private static void Compact(IBusFactoryConfigurator cfg) =>
        cfg.ConfigureJsonSerializerOptions(json =>
        {
            json.WriteIndented = false;
            return json;
        });

    /// <summary>
    /// A consumer that hits a storage hiccup (the database restarting under a checkpoint read) is run again with
    /// backoff for about <see cref="PrefTuneOptions.StoreRetrySeconds"/> before its fault goes back to the caller:
    /// every consumer is idempotent, so running one again is safe. Bad input and bugs are not retried.
    /// </summary>
    private static void RetryTransientFailures(IBusFactoryConfigurator cfg, PrefTuneOptions options)
    {
        var attempts = Math.Max(3, (int)Math.Ceiling(options.StoreRetrySeconds / 5));
        cfg.UseMessageRetry(r =>
        {
            r.Exponential(attempts, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
            r.Handle<Npgsql.NpgsqlException>(e => e is not Npgsql.PostgresException || e.IsTransient);
            r.Handle<IOException>();
            r.Handle<TimeoutException>();
            r.Handle<Polly.Timeout.TimeoutRejectedException>();
        });
    }
}

using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using PrefTune.ServiceDefaults;

namespace PrefTune.Sampler;

/// <summary>Holds each run's policy at a known version and generates rollouts from it.</summary>
public sealed class SamplerRole : IServiceRole
{
    public string Name => "sampler";

    public void AddServices(IServiceCollection services)
    {
        services.AddSingleton<PolicyCache>();
        services.AddSingleton<EvaluationsUnderWay>();
    }

    public void AddConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<SampleRolloutsConsumer, SampleRolloutsConsumerDefinition>();
        bus.AddConsumer<EvaluatePolicyConsumer, EvaluatePolicyConsumerDefinition>();
        bus.AddConsumer<PrefetchCheckpointConsumer, PrefetchCheckpointConsumerDefinition>();
        bus.AddConsumer<AnnounceSampler>();
    }
}

public sealed class AnnounceSampler() : AnnounceServiceConsumer("sampler");

using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using PrefTune.ServiceDefaults;

namespace PrefTune.Scorer;

/// <summary>Scores rollouts: the reward a method trains on, and the gold reward that is only measured.</summary>
public sealed class ScorerRole : IServiceRole
{
    public string Name => "scorer";

    public void AddServices(IServiceCollection services) => services.AddSingleton<RewardFunctions>();

    public void AddConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<ScoreRolloutsConsumer>();
        bus.AddConsumer<AnnounceScorer>();
    }
}

public sealed class AnnounceScorer() : AnnounceServiceConsumer("scorer");

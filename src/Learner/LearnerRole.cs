using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using PrefTune.ServiceDefaults;

namespace PrefTune.Learner;

/// <summary>Owns each run's trainable policy, reference and optimizer; applies the method's loss; publishes checkpoints.</summary>
public sealed class LearnerRole : IServiceRole
{
    public string Name => "learner";

    public void AddServices(IServiceCollection services) => services.AddSingleton<Learners>();

    public void AddConsumers(IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<InitializePolicyConsumer, InitializePolicyConsumerDefinition>();
        bus.AddConsumer<TrainPolicyConsumer, TrainPolicyConsumerDefinition>();
        bus.AddConsumer<AnnounceLearner>();
    }
}

public sealed class AnnounceLearner() : AnnounceServiceConsumer("learner");

using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace PrefTune.ServiceDefaults;

/// <summary>
/// One deployable stage (sampler, scorer, learner). A process hosts one role (its own Program.cs, or
/// `preftune serve ROLE`) or all of them (the in-memory default), with the same registrations.
/// </summary>
public interface IServiceRole
{
    string Name { get; }
    void AddServices(IServiceCollection services);
    void AddConsumers(IBusRegistrationConfigurator bus);
}

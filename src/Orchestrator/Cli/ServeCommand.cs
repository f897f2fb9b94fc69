using System.ComponentModel;
using Microsoft.Extensions.Hosting;
using PrefTune.Orchestrator.Hosting;
using PrefTune.ServiceDefaults;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>`preftune serve sampler [scorer] [learner]`: run stage services against a broker until stopped.</summary>
public sealed class ServeCommand : AsyncCommand<ServeCommand.Settings>
{
    public sealed class Settings : ServiceSettings
    {
        [CommandArgument(0, "<ROLES>")]
        [Description("sampler, scorer and/or learner")]
        public string[] Roles { get; init; } = [];
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        ParentWatch.Arm(); // started by an Orchestrator: die with it
        var roles = settings.Roles.Select(OrchestratorHost.Role).ToList();
        var options = settings.ToOptions();
        if (string.IsNullOrWhiteSpace(options.Broker))
            throw new ArgumentException("broker: `serve` needs a broker (--broker or PREFTUNE_BROKER); without one, `run` hosts every service in-process");
        options = await PrefTuneHost.ConnectAsync(options, cancellationToken);
        using var host = OrchestratorHost.BuildService(options, roles);
        await host.RunAsync(cancellationToken);
        return 0;
    }
}

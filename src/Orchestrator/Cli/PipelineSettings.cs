using System.ComponentModel;
using PrefTune.ServiceDefaults;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>What a command that drives the stages (run, study, replay, resume, bench) needs: the services' settings, and where the services run.</summary>
public class PipelineSettings : ServiceSettings
{
    [CommandOption("--external-services")]
    [Description("With --broker: do not start the services here; wait for ones started elsewhere (`preftune serve`).")]
    public bool ExternalServices { get; init; }

    /// <summary>In-process without a broker; with one, child processes unless the services run elsewhere.</summary>
    public Hosting.ServiceHosting Hosting(PrefTuneOptions options) =>
        string.IsNullOrWhiteSpace(options.Broker) ? PrefTune.Orchestrator.Hosting.ServiceHosting.InProcess
        : ExternalServices ? PrefTune.Orchestrator.Hosting.ServiceHosting.External : PrefTune.Orchestrator.Hosting.ServiceHosting.ChildProcesses;
}

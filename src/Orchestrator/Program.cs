using PrefTune.Orchestrator.Cli;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("preftune");
    config.PropagateExceptions();
    config.AddCommand<RunCommand>("run").WithDescription("Run an experiment file (methods x seeds) and write its metrics, plots and summary.");
    config.AddCommand<RunsCommand>("runs").WithDescription("List the runs recorded in the event store.");
    config.AddCommand<ShowCommand>("show").WithDescription("Summarise one recorded run from its events alone.");
    config.AddCommand<MethodsCommand>("methods").WithDescription("The methods and where each sits on the three axes.");
    config.AddCommand<ServeCommand>("serve").WithDescription("Run stage services (sampler, scorer, learner) against a broker.");
    config.AddCommand<BenchCommand>("bench").WithDescription("Measure gradient steps per second and pipeline overhead (in-process, and over RabbitMQ with --broker).");
});
return await CliErrors.RunAsync(() => app.RunAsync(args));

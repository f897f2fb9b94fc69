using PrefTune.Orchestrator.Cli;
using PrefTune.Orchestrator.Hosting;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("preftune");
    config.PropagateExceptions();
    config.AddCommand<RunCommand>("run").WithDescription("Run an experiment file (methods x seeds) and write its metrics, plots and summary.");
    config.AddCommand<StudyCommand>("study").WithDescription("Run a study file (rewards x methods x seeds, plus sweeps of B or T) as one recorded study and write its report.");
    config.AddCommand<RunsCommand>("runs").WithDescription("List the runs recorded in the event store.");
    config.AddCommand<ShowCommand>("show").WithDescription("Summarise one recorded run from its events alone.");
    config.AddCommand<ReplayCommand>("replay").WithDescription("Rebuild a run's Learner trajectory from its recorded batches and compare every checkpoint hash; with --method, train another method on the same samples.");
    config.AddCommand<ResumeCommand>("resume").WithDescription("Continue a run whose processes died, from its event stream and last checkpoint.");
    config.AddCommand<PruneCommand>("prune").WithDescription("Remove stored weights no run needs for replay, resume or lineage (never an event); --dry-run says what would go.");
    config.AddCommand<MethodsCommand>("methods").WithDescription("The methods and where each sits on the three axes.");
    config.AddCommand<ServeCommand>("serve").WithDescription("Run stage services (sampler, scorer, learner) against a broker.");
    config.AddCommand<BenchCommand>("bench").WithDescription("Measure gradient steps per second and pipeline overhead (in-process, and over RabbitMQ with --broker); --split: one iteration split into sampling, scoring, learning, evaluation and the rest.");
    config.AddBranch<DbCommand.Settings>("db", DbCommand.Configure);
    config.AddCommand<ExportCommand>("export").WithDescription("Write a language-model run's policy checkpoint (default: its last kept one) as a Hugging Face model directory.");
    config.AddCommand<PreferenceDataCommand>("preference-data").WithDescription("Sample a length task's reference and write its preference pairs (JSONL, Parquet with --parquet), scored by the task's gold rule, recorded in the event store.");
    config.AddCommand<TrainRmCommand>("train-rm").WithDescription("Train a proxy reward model (Bradley-Terry) on preference pairs from an SFT model and write it as a Hugging Face directory for reward_model.path.");
    config.AddCommand<SftCommand>("sft").WithDescription("Fine-tune a causal language model on prompt/completion data (the loss on the completions only) and write it as a Hugging Face directory for task.model.path: your own reference.");
    config.AddCommand<DataCommand>("data").WithDescription("What a preference or prompt file holds (TRL, AlpacaFarm, UltraFeedback, HH, relabeled; JSONL or Parquet): its format, rows, length percentiles and first rows.");
    config.AddCommand<GenerateCommand>("generate").WithDescription("Sample text from a language model (a Hugging Face directory or a llama2.c checkpoint): the first check on a model.");
    config.AddCommand<ToyCommand>("toy").WithDescription("The mode-seeking toy: descend KL(p||q) and KL(q||p) on a categorical and plot both.");
});
// Bare `preftune` is a mistake a script should notice: print the help, but exit 1.
if (args.Length == 0)
{
    await app.RunAsync(["--help"]);
    return 1;
}
var stop = ShutdownSignals.Install();
var code = await CliErrors.RunAsync(() => app.RunAsync(args, stop));
return ShutdownSignals.Received is null ? code : ShutdownSignals.ExitCode;

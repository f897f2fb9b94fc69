using System.ComponentModel;
using PrefTune.Messages;
using PrefTune.Orchestrator.Bench;
using PrefTune.Orchestrator.Experiments;
using PrefTune.Orchestrator.Hosting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune bench [EXPERIMENT] [--broker URI]`: for each method, gradient steps per second through the
/// pipeline, and the time per Algorithm 1 iteration spent outside the model (messaging and event store),
/// measured as pipeline time minus the same model work called directly. A benchmark, not a test. --pipeline, --split,
/// --lm and --checkpoint-io are other benchmarks (see their option help).
/// </summary>
public sealed class BenchCommand : AsyncCommand<BenchCommand.Settings>
{
    public sealed class Settings : PipelineSettings
    {
        [CommandArgument(0, "[EXPERIMENT]")]
        [Description("Experiment whose methods to time. Default: experiments/bandit-peak70.yaml")]
        public string Experiment { get; init; } = "experiments/bandit-peak70.yaml";

        [CommandOption("--steps <N>")]
        [Description("Gradient steps per method (default 100).")]
        public int Steps { get; init; } = 100;

        [CommandOption("--pipeline")]
        [Description("Instead: events/s, event-store and stage shares of wall-clock, replay speed, and max_staleness K = 0/1/2, on one method.")]
        public bool Pipeline { get; init; }

        [CommandOption("--data-plane")]
        [Description("Instead: bytes per sample on the wire (per message type and purpose), in the event store and in checkpoints, and the share of wall-clock outside the model, on one method (--method, --steps) with the file's eval_every (see DataPlaneBench).")]
        public bool DataPlane { get; init; }

        [CommandOption("--split")]
        [Description("Instead: one Algorithm 1 iteration's wall-clock split into training sampling, reward scoring, learning, evaluation and the rest, per method (or --method), in process at max_staleness 0 with the file's eval_every (no servers; see StageSplitBench).")]
        public bool Split { get; init; }

        [CommandOption("--lm")]
        [Description("Instead: language-model sampling and learner tokens/s and GFLOP/s beside the matmul peak (no servers; see LanguageModelBench).")]
        public bool LanguageModels { get; init; }

        [CommandOption("--checkpoint-io")]
        [Description("Instead: write and read MB/s of a ~30M-parameter model's weights, and with its Adam state, in the directory store and the PostgreSQL store (--database, else the data folder's PostgreSQL; see CheckpointBench).")]
        public bool CheckpointIo { get; init; }

        [CommandOption("--precision")]
        [Description("With --lm: instead of sampling, the learner in fp32 against bf16 mixed precision: tokens/s, and the loss after the same 50 steps (see LanguageModelBench.RunPrecision).")]
        public bool Precision { get; init; }

        [CommandOption("--model <PATH>")]
        [Description("With --lm: stories260K (or any model) to time first. Default: a random model of stories260K's shape.")]
        public string? Model { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description(Training.ComputeDevice.OptionHelp)]
        public string? Device { get; init; }

        [CommandOption("--threads <N>")]
        [Description("With --lm: torch threads (default 1, the services' default; more threads on a busy machine can be far slower).")]
        [DefaultValue(1)]
        public int Threads { get; init; } = 1;

        [CommandOption("--method <LABEL>")]
        [Description("With --pipeline or --data-plane: the method (label or name) to time. Default: the experiment's first online method. With --split: time only this one (default: every method).")]
        public string? Method { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.LanguageModels)
        {
            if (settings.Precision)
                LanguageModelBench.RunPrecision(settings.Model, Training.ComputeDevice.Resolve(settings.Device), settings.Threads);
            else
                LanguageModelBench.Run(settings.Model, Training.ComputeDevice.Resolve(settings.Device), settings.Threads);
            return 0;
        }
        if (settings.CheckpointIo)
        {
            var connected = await PrefTune.ServiceDefaults.PrefTuneHost.ConnectAsync(settings.ToOptions() with { Broker = null }, cancellationToken);
            await CheckpointBench.RunAsync(connected.Database!, cancellationToken);
            return 0;
        }
        var experiment = ExperimentFile.Load(settings.Experiment);
        if (settings.Split)
        {
            // The file's eval_every (at most --steps) rather than one evaluation at the end: the evaluation share is then the run's.
            var timed = experiment.Runs.Where(r => r.Seed == experiment.Runs[0].Seed)
                .Where(r => settings.Method is null || r.Label == settings.Method || r.Method.Name == settings.Method)
                .Select(r => r with { Loop = r.Loop with { GradientSteps = settings.Steps, EvalEvery = Math.Min(r.Loop.EvalEvery, settings.Steps) } })
                .ToList();
            if (timed.Count == 0) throw new ArgumentException($"--method: no method '{settings.Method}' in {settings.Experiment}");
            await StageSplitBench.RunAsync(timed, cancellationToken);
            return 0;
        }
        if (settings.Steps <= 0) throw new ArgumentException($"--steps: {settings.Steps} is not a positive number of gradient steps");
        var options = settings.ToOptions();
        var specs = experiment.Runs.Where(r => r.Seed == experiment.Runs[0].Seed)
            .Select(r => r with { Loop = r.Loop with { GradientSteps = settings.Steps, EvalEvery = settings.Steps } })
            .ToList();

        // A --method that names nothing is refused before any server starts.
        var one = settings.Pipeline ? OneMethod(specs, settings)
            : settings.DataPlane ? OneMethod(experiment.Runs.Where(r => r.Seed == experiment.Runs[0].Seed), settings) : null;

        await using var session = await PipelineSession.StartAsync(options, settings.Hosting(options), cancellationToken);
        if (settings.Pipeline)
        {
            await PipelineBench.RunAsync(session, one!, cancellationToken);
            return 0;
        }
        if (settings.DataPlane)
        {
            // The file's eval_every (at most --steps), not one evaluation at the end: evaluation traffic is then the run's.
            await DataPlaneBench.RunAsync(session, one! with { Loop = one.Loop with { GradientSteps = settings.Steps, EvalEvery = Math.Min(one.Loop.EvalEvery, settings.Steps) } },
                cancellationToken);
            return 0;
        }
        var table = new Table().AddColumns("method", "steps", "iterations", "pipeline steps/s", "direct steps/s", "outside the model per iteration (ms)");
        table.Title = new TableTitle($"transport {session.Transport}, event store on, {settings.Steps} steps per method");
        // One untimed run first: the JIT, libtorch and the broker's queues warm up.
        await session.RunAsync(specs[0] with { Loop = specs[0].Loop with { GradientSteps = 5, EvalEvery = 5 } }, null, cancellationToken);
        await DirectLoop.RunAsync(specs[0] with { Loop = specs[0].Loop with { GradientSteps = 5, EvalEvery = 5 } }, cancellationToken);
        foreach (var spec in specs)
        {
            var outcome = await session.RunAsync(spec, null, cancellationToken);
            var direct = (await DirectLoop.RunAsync(spec, cancellationToken)).Elapsed;
            var iterations = spec.Loop.GradientSteps / (spec.Loop.T * spec.Loop.B / spec.Loop.M);
            var overhead = (outcome.Elapsed - direct).TotalMilliseconds / iterations;
            table.AddRow(Markup.Escape(spec.Label), outcome.GradientSteps.ToString(), iterations.ToString(),
                $"{outcome.GradientSteps / outcome.Elapsed.TotalSeconds:0.0}", $"{spec.Loop.GradientSteps / direct.TotalSeconds:0.0}", $"{overhead:0.00}");
        }
        AnsiConsole.Write(table);
        return 0;
    }

    /// <summary>--method's run (label or method name), else the experiment's first online one.</summary>
    private static RunSpec OneMethod(IEnumerable<RunSpec> specs, Settings settings) =>
        specs.FirstOrDefault(s => settings.Method is null ? s.Method.Data == DataSource.Online : s.Label == settings.Method || s.Method.Name == settings.Method)
        ?? throw new ArgumentException($"--method: no {(settings.Method is null ? "online method" : $"method '{settings.Method}'")} in {settings.Experiment}");
}

using System.ComponentModel;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// The flags that `sft` and `train-rm` mean alike: the tokenizer, the output directory, the schedule's length and
/// warmup, and where the training runs. What differs (the data, the model, batch, learning rate, the held-out share and
/// the seed, whose defaults or help name rows or pairs) each command's settings declare themselves.
/// </summary>
public class TrainingSettings : StoreSettings
{
    [CommandOption("--tokenizer <FILE>")]
    [Description("tokenizer.json or a llama2.c tokenizer .bin. Default: the model directory's tokenizer.json.")]
    public string? Tokenizer { get; init; }

    [CommandOption("--output <DIR>")]
    [Description("Directory to write (must not exist, or be empty: nothing is ever overwritten).")]
    public string? Output { get; init; }

    [CommandOption("--steps <N>")]
    [Description("Optimizer steps. Default: 100.")]
    public int Steps { get; init; } = 100;

    [CommandOption("--warmup-steps <N>")]
    [Description("Linear warmup steps before the cosine decay. Default: 0.")]
    public int WarmupSteps { get; init; }

    [CommandOption("--threads <N>")]
    [Description("libtorch threads (results are reproducible at equal thread counts). Default: 1.")]
    public int Threads { get; init; } = 1;

    [CommandOption("--device <DEVICE>")]
    [Description(ComputeDevice.OptionHelp)]
    public string? Device { get; init; }

    /// <summary>--output as a full path, checked to be new or empty.</summary>
    /// <param name="what">What will be written there, for the message when --output is missing.</param>
    public string OutputDirectory(string what)
    {
        if (string.IsNullOrWhiteSpace(Output)) throw new ArgumentException($"--output: missing; name a new (or empty) directory for {what}");
        var output = Path.GetFullPath(Output);
        try { HfExport.EnsureEmptyOrAbsent(output); }
        catch (ArgumentException e) { throw new ArgumentException($"--output {e.Message}"); }
        return output;
    }

    /// <summary>The data file, the model and the tokenizer as full paths (a model or tokenizer may be an <c>org/name</c> in the
    /// Hugging Face cache), with the device and threads.</summary>
    public TrainingSource Source(string data, string model)
    {
        var here = Directory.GetCurrentDirectory();
        static string Named(string flag, Func<string> resolve)
        {
            try { return resolve(); }
            catch (ModelReferenceException e) { throw new ArgumentException($"{flag} {e.Message}"); }
        }
        return new(Path.GetFullPath(data), Named("--model", () => ModelReferences.Resolve(model, here)),
            Tokenizer is null ? "" : Named("--tokenizer", () => ModelReferences.Resolve(Tokenizer, here)), Device, Threads);
    }

    /// <summary>Runs a training settings record's Validate, naming the bad field as the flag it came from
    /// (learning_rate = 0 ... becomes --learning-rate = 0 ...).</summary>
    protected static void ValidateAsFlags(Action validate)
    {
        try { validate(); }
        catch (ArgumentException e) { throw new ArgumentException("--" + e.Message.Replace('_', '-')); }
    }
}

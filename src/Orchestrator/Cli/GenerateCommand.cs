using PrefTune.Messages;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune generate MODEL`: the first sanity check on a model. MODEL is a Hugging Face directory or a llama2.c
/// checkpoint; prints the sampled text, or with --json {"prompt_ids", "samples": [{"ids", "text", "finish_reason"}]}
/// where ids are the new tokens without the stop token. Samples run as batches, not one loop each.
/// </summary>
public sealed class GenerateCommand : Command<GenerateCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<MODEL>")]
        [Description("A Hugging Face model directory (config.json, model.safetensors) or a llama2.c checkpoint (.bin)")]
        public string Model { get; init; } = "";

        [CommandOption("--tokenizer <FILE>")]
        [Description("tokenizer.json or a llama2.c tokenizer .bin. Default: the model directory's tokenizer.json")]
        public string? Tokenizer { get; init; }

        [CommandOption("--prompt <TEXT>")]
        [Description("Prompt text (needs a tokenizer)")]
        public string? Prompt { get; init; }

        [CommandOption("--prompt-ids <IDS>")]
        [Description("Prompt token ids, e.g. 1,403,407")]
        public string? PromptIds { get; init; }

        [CommandOption("--max-new-tokens <N>")]
        [DefaultValue(64)]
        public int MaxNewTokens { get; init; } = 64;

        [CommandOption("--temperature <T>")]
        [Description("0 is greedy")]
        [DefaultValue(1.0)]
        public double Temperature { get; init; } = 1.0;

        [CommandOption("--top-k <K>")]
        [Description("0 keeps every token")]
        public int TopK { get; init; }

        [CommandOption("--top-p <P>")]
        [DefaultValue(1.0)]
        public double TopP { get; init; } = 1.0;

        [CommandOption("--samples <C>")]
        [DefaultValue(1)]
        public int Samples { get; init; } = 1;

        [CommandOption("--batch <B>")]
        [Description("Samples run together at most")]
        [DefaultValue(64)]
        public int Batch { get; init; } = 64;

        [CommandOption("--seed <S>")]
        public long Seed { get; init; }

        [CommandOption("--stop-ids <IDS>")]
        [Description("Ids that end a response, e.g. 1,2; 'none' disables. Default: the model's (eos_token_id; BOS for llama2.c)")]
        public string? StopIds { get; init; }

        [CommandOption("--threads <N>")]
        [DefaultValue(1)]
        public int Threads { get; init; } = 1;

        [CommandOption("--device <DEVICE>")]
        [Description(ComputeDevice.OptionHelp)]
        public string? Device { get; init; }

        [CommandOption("--no-cache")]
        [Description("Re-run the whole prefix at every step instead of keeping the keys and values (same tokens; for timing)")]
        public bool NoCache { get; init; }

        [CommandOption("--json")]
        public bool Json { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if ((settings.Prompt is null) == (settings.PromptIds is null))
            throw new ArgumentException("give the prompt as --prompt TEXT or as --prompt-ids 1,2,3 (one of them)");
        TorchRuntime.UseThreads(settings.Threads);
        using var model = Checkpoints.Load(settings.Model, ComputeDevice.Resolve(settings.Device));
        var tokenizerPath = settings.Tokenizer ?? (Directory.Exists(settings.Model) && File.Exists(Path.Combine(settings.Model, "tokenizer.json")) ? settings.Model : null);
        using var tokenizer = tokenizerPath is null ? null : TextTokenizers.Load(tokenizerPath);
        if (tokenizer is not null) TokenizerChecks.EnsureFits(tokenizer, model.Config, tokenizerPath!);
        var prompt = settings.PromptIds is not null
            ? Ids(settings.PromptIds, "--prompt-ids")
            : tokenizer?.Encode(settings.Prompt!) ?? throw new ArgumentException("--prompt needs a tokenizer: pass --tokenizer FILE (or use --prompt-ids)");
        var stopIds = settings.StopIds is null ? model.Config.StopIds
            : settings.StopIds.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? [] : Ids(settings.StopIds, "--stop-ids");

        var clock = Stopwatch.StartNew();
        var responses = TextGeneration.Generate(model, [prompt], new SamplingSettings
        {
            MaxNewTokens = settings.MaxNewTokens, Temperature = settings.Temperature, TopK = settings.TopK, TopP = settings.TopP,
            Samples = settings.Samples, MaxBatch = settings.Batch, Seed = settings.Seed, StopIds = stopIds, UseCache = !settings.NoCache,
        });
        clock.Stop();
        string? Text(int[] ids) => tokenizer is null ? null : tokenizer.Continuation(prompt, ids);

        if (settings.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                prompt_ids = prompt,
                samples = responses.Select(r => new { ids = r.Ids, text = Text(r.Ids), finish_reason = r.Finish == FinishReason.Stop ? "stop" : "length" }),
            }));
            return 0;
        }
        var promptText = tokenizer?.Decode(prompt) ?? string.Join(",", prompt);
        foreach (var r in responses)
        {
            if (responses.Count > 1) Console.WriteLine($"--- sample {r.Sample + 1}");
            Console.WriteLine(promptText + (Text(r.Ids) ?? " " + string.Join(",", r.Ids)));
            Console.Error.WriteLine($"[{(r.Finish == FinishReason.Stop ? $"stopped on {r.StopId}" : "length limit")}, {r.Ids.Length} new tokens]");
        }
        var tokens = responses.Sum(r => r.Ids.Length);
        Console.Error.WriteLine($"{responses.Count} sample(s), {tokens} tokens in {clock.Elapsed.TotalSeconds:0.00} s ({tokens / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):0} tokens/s)");
        return 0;
    }

    private static int[] Ids(string text, string option)
    {
        try { return text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new ArgumentException($"{option} takes comma-separated token ids, got '{text}'"); }
    }
}

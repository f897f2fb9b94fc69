using System.ComponentModel;
using System.Globalization;
using PrefTune.Training.Datasets;
using PrefTune.Training.LanguageModels;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>
/// `preftune data FILE`: what a preference (or prompt) file holds before anything trains on it: the format detected
/// from its columns, the number of rows, the prompt and response lengths (tokens with a tokenizer, else characters) at
/// a few percentiles, and the first rows as the model would read them (prompts through the template).
/// </summary>
public sealed class DataCommand : AsyncCommand<DataCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("A .jsonl or .parquet file: TRL standard or conversational, prompt-only, AlpacaFarm, UltraFeedback, Anthropic HH, or the study's relabeled pairs")]
        public string File { get; init; } = "";

        [CommandOption("--tokenizer <PATH>")]
        [Description("tokenizer.json, a directory holding one, a llama2.c tokenizer .bin, or org/name in the Hugging Face cache: lengths in its tokens (default: characters)")]
        public string? Tokenizer { get; init; }

        [CommandOption("--template <NAME>")]
        [Description("How conversations become text: plain, prompter (the paper's), hh, llama-2, chatml, llama-3. Default: the tokenizer's tokenizer_config.json chat template if it has one of these shapes, else plain")]
        public string? Template { get; init; }

        [CommandOption("--convert <FORMAT>")]
        [Description("Also write the rows in this format (trl-standard, trl-conversational, prompt-only, alpacafarm, ultrafeedback, anthropic-hh, relabeled) as JSONL to --output")]
        public string? Convert { get; init; }

        [CommandOption("--output <FILE>")]
        [Description("With --convert: the .jsonl file to write (must not exist: nothing is ever overwritten)")]
        public string? Output { get; init; }

        [CommandOption("--limit <N>")]
        [Description("With --convert: write the first N rows only. Default: all")]
        public int? Limit { get; init; }

        [CommandOption("--rows <N>")]
        [Description("Rows to print. Default: 3")]
        public int Rows { get; init; } = 3;
    }

    private static readonly double[] Percentiles = [0, 10, 50, 90, 100];

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Rows < 0) throw new ArgumentException($"--rows: {settings.Rows} is below 0");
        var here = Directory.GetCurrentDirectory();
        string? tokenizerPath;
        try { tokenizerPath = settings.Tokenizer is null ? null : ModelReferences.Resolve(settings.Tokenizer, here); }
        catch (ModelReferenceException e) { throw new ArgumentException($"--tokenizer {e.Message}"); }
        PromptTemplate Named(string name) { try { return PromptTemplate.Named(name); } catch (ArgumentException e) { throw new ArgumentException($"--template: {e.Message}"); } }
        var template = settings.Template is not null ? Named(settings.Template)
            : tokenizerPath is not null && TokenizerConfig(tokenizerPath) is { } config ? PromptTemplate.FromTokenizerConfig(config) ?? PromptTemplate.Plain
            : PromptTemplate.Plain;
        PreferenceFormat? convert = null;
        string? output = null;
        if (settings.Convert is not null)
        {
            try { convert = PreferenceFormats.Named(settings.Convert); }
            catch (ArgumentException e) { throw new ArgumentException($"--convert: {e.Message}"); }
            output = string.IsNullOrWhiteSpace(settings.Output) ? throw new ArgumentException("--output: missing; --convert writes a new .jsonl file")
                : Path.GetFullPath(settings.Output);
            if (File.Exists(output) || Directory.Exists(output)) throw new ArgumentException($"--output: {output} exists; nothing is ever overwritten");
            if (settings.Limit is < 1) throw new ArgumentException($"--limit: {settings.Limit} is below 1");
        }
        else if (settings.Output is not null || settings.Limit is not null)
            throw new ArgumentException("--output and --limit go with --convert FORMAT");
        var (format, examples) = await PreferenceFormats.ReadAsync(Path.GetFullPath(settings.File), ct: cancellationToken);
        using var tokenizer = tokenizerPath is null ? null : TextTokenizers.Load(tokenizerPath);
        Func<string, int> length = tokenizer is null ? text => text.Length : text => tokenizer.Encode(text).Length;
        var unit = tokenizer is null ? "characters" : "tokens";

        Console.WriteLine($"{settings.File}: {PreferenceFormats.NameOf(format)}, {examples.Count} rows"
            + (examples.Any(e => e.PromptMessages is not null) ? $", conversations rendered with the {template.Name} template" : ""));
        Console.WriteLine($"lengths in {unit} at percentiles {string.Join(" / ", Percentiles.Select(p => p.ToString(CultureInfo.InvariantCulture)))}:");
        void Line(string what, IEnumerable<string?> texts)
        {
            var lengths = texts.Where(t => t is not null).Select(t => length(t!)).Order().ToArray();
            if (lengths.Length > 0)
                Console.WriteLine($"  {what,-9} {string.Join(" / ", Percentiles.Select(p => lengths[(int)Math.Round(p / 100 * (lengths.Length - 1))]))}");
        }
        Line("prompt", examples.Select(e => e.Prompt(template)));
        Line("chosen", examples.Select(e => e.Chosen));
        Line("rejected", examples.Select(e => e.Rejected));
        if (convert is { } target)
        {
            var written = examples.Take(settings.Limit ?? examples.Count).ToList();
            PreferenceFormats.WriteJsonl(output!, target, written, template);
            Console.WriteLine($"wrote {written.Count} rows as {PreferenceFormats.NameOf(target)} to {output}");
        }
        foreach (var example in examples.Take(settings.Rows))
        {
            Console.WriteLine($"--- {example.Where}");
            Console.WriteLine($"prompt:   {Quoted(example.Prompt(template))}");
            if (example.Chosen is not null) Console.WriteLine($"chosen:   {Quoted(example.Chosen)}{Score(example.ChosenScore)}");
            if (example.Rejected is not null) Console.WriteLine($"rejected: {Quoted(example.Rejected)}{Score(example.RejectedScore)}");
        }
        return 0;
    }

    /// <summary>tokenizer_config.json beside a tokenizer file, or in its directory.</summary>
    private static string? TokenizerConfig(string tokenizer)
    {
        var folder = Directory.Exists(tokenizer) ? tokenizer : Path.GetDirectoryName(tokenizer) ?? "";
        var config = Path.Combine(folder, "tokenizer_config.json");
        return File.Exists(config) ? config : null;
    }

    private static string Score(double? score) => score is { } s ? $"  (score {s.ToString("0.###", CultureInfo.InvariantCulture)})" : "";

    /// <summary>On one line, escapes visible, long text cut: a row is for looking at, not for copying.</summary>
    private static string Quoted(string text)
    {
        var escaped = System.Text.Json.JsonSerializer.Serialize(text, new System.Text.Json.JsonSerializerOptions
        {
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        return escaped.Length <= 200 ? escaped : escaped[..197] + "...";
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet.Serialization;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Training.Datasets;

/// <summary>The shapes of preference (and prompt) data users bring; <see cref="PreferenceFormats"/> maps each one's columns.</summary>
public enum PreferenceFormat
{
    /// <summary>TRL's standard form: prompt, chosen, rejected as text.</summary>
    TrlStandard,
    /// <summary>TRL's conversational form: prompt, chosen, rejected as lists of {role, content}.</summary>
    TrlConversational,
    /// <summary>Prompts alone (text or messages), for on-policy methods.</summary>
    PromptOnly,
    /// <summary>AlpacaFarm: instruction, input, output_1, output_2, preference (1 or 2).</summary>
    AlpacaFarm,
    /// <summary>UltraFeedback binarized: prompt, prompt_id, chosen and rejected as conversations, messages, score_chosen, score_rejected.</summary>
    UltraFeedback,
    /// <summary>Anthropic HH: chosen and rejected as whole dialogues ("\n\nHuman: ...\n\nAssistant: ..."); their shared start is the prompt.</summary>
    AnthropicHh,
    /// <summary>The study's relabeled sets: prompt, y_w, y_l, y_w_score, y_l_score, score_diff (y_w and y_l hold prompt + response).</summary>
    Relabeled,
}

/// <summary>
/// One example of any format: the prompt (as text, or as a conversation a <see cref="PromptTemplate"/> renders), the
/// chosen and rejected responses (null in prompt-only data), their scores where the format has them, and where it was
/// read ("FILE, line N" or "FILE, row N").
/// </summary>
public sealed record PreferenceExample(string Where, string? PromptText, IReadOnlyList<ChatMessage>? PromptMessages,
    string? Chosen, string? Rejected, double? ChosenScore = null, double? RejectedScore = null)
{
    /// <summary>The prompt as the model reads it: text as it is, a conversation through <paramref name="template"/>.</summary>
    public string Prompt(PromptTemplate template) => PromptText ?? template.Render(PromptMessages!);
}

/// <summary>
/// Reads any <see cref="PreferenceFormat"/> from JSONL or Parquet: the format is detected from the columns, each
/// format's mapping is written once below, and every problem names the file, the line (JSONL, from 1) or row (Parquet,
/// from 0) and the column. Parquet files are read into the same JSON rows as JSONL (nested lists and structs as
/// arrays and objects), so one mapping serves both.
/// </summary>
public static class PreferenceFormats
{
    /// <summary>The name `preftune data` prints and a user may give.</summary>
    public static string NameOf(PreferenceFormat format) => format switch
    {
        PreferenceFormat.TrlStandard => "trl-standard",
        PreferenceFormat.TrlConversational => "trl-conversational",
        PreferenceFormat.PromptOnly => "prompt-only",
        PreferenceFormat.AlpacaFarm => "alpacafarm",
        PreferenceFormat.UltraFeedback => "ultrafeedback",
        PreferenceFormat.AnthropicHh => "anthropic-hh",
        PreferenceFormat.Relabeled => "relabeled",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>What marks the start of the assistant's turn in a relabeled row's y_w and y_l (the paper's prompt format).</summary>
    public const string AssistantMarker = "<|assistant|>";
    private const string HhAssistant = "\n\nAssistant:";

    /// <summary>The file's rows as JSON objects with where each stands.</summary>
    public static async Task<IReadOnlyList<(string Where, JsonObject Row)>> ReadRowsAsync(string path, CancellationToken ct = default) =>
        await RowFiles.ReadAsync(path, p => RowFiles.JsonlObjects(p).ToList(), ParquetRowsAsync, "preference data is", "holds no rows", ct);

    private static async Task<List<(string Where, JsonObject Row)>> ParquetRowsAsync(string path, CancellationToken ct)
    {
        await using var stream = File.OpenRead(path);
        IList<Dictionary<string, object>> data;
        try { data = (await ParquetSerializer.DeserializeUntypedAsync(stream, cancellationToken: ct)).Data; }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or InvalidOperationException)
        {
            throw new ArgumentException($"{path}: not a Parquet file this reader can read ({e.Message})");
        }
        return data.Select((row, i) => ($"{path}, row {i}", (JsonObject)ToNode(row)!)).ToList();
    }

    /// <summary>An untyped Parquet value as JSON: dictionaries are objects, lists arrays, strings and numbers themselves.</summary>
    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        IDictionary<string, object> map => new JsonObject(map.Select(kv => KeyValuePair.Create(kv.Key, ToNode(kv.Value)))),
        string s => JsonValue.Create(s),
        ReadOnlyMemory<char> m => JsonValue.Create(m.ToString()),
        System.Collections.IEnumerable list => new JsonArray(list.Cast<object?>().Select(ToNode).ToArray()),
        _ => JsonSerializer.SerializeToNode(value),
    };

    /// <summary>The format the columns of the first row say, or an error naming the columns and the formats known.</summary>
    public static PreferenceFormat Detect(string path, JsonObject first)
    {
        bool Has(params string[] columns) => columns.All(first.ContainsKey);
        bool IsList(string column) => first[column] is JsonArray;
        if (Has("instruction", "output_1", "output_2", "preference")) return PreferenceFormat.AlpacaFarm;
        if (Has("prompt", "y_w", "y_l")) return PreferenceFormat.Relabeled;
        if (Has("prompt", "chosen", "rejected", "score_chosen", "score_rejected") && IsList("chosen")) return PreferenceFormat.UltraFeedback;
        if (Has("prompt", "chosen", "rejected")) return IsList("chosen") ? PreferenceFormat.TrlConversational : PreferenceFormat.TrlStandard;
        if (Has("chosen", "rejected")) return PreferenceFormat.AnthropicHh;
        if (Has("prompt")) return PreferenceFormat.PromptOnly;
        throw new ArgumentException($"{path}: columns {string.Join(", ", first.Select(kv => kv.Key))} fit no known format; known: "
            + "trl-standard (prompt, chosen, rejected), trl-conversational (the same as messages), prompt-only (prompt), "
            + "alpacafarm (instruction, input, output_1, output_2, preference), ultrafeedback (prompt, chosen, rejected, score_chosen, score_rejected), "
            + "anthropic-hh (chosen, rejected), relabeled (prompt, y_w, y_l, y_w_score, y_l_score, score_diff)");
    }

    /// <summary>Reads a file of any format (detected unless <paramref name="format"/> is given).</summary>
    /// <remarks>The study's relabeled sets are read by their own reader (<see cref="PreferenceDataFiles"/>, which train-rm,
    /// preference-data and the length task's offline runs use): one reader of that format, its checks and messages.</remarks>
    public static async Task<(PreferenceFormat Format, IReadOnlyList<PreferenceExample> Examples)> ReadAsync(string path,
        PreferenceFormat? format = null, CancellationToken ct = default)
    {
        var rows = await ReadRowsAsync(path, ct);
        var chosen = format ?? Detect(path, rows[0].Row);
        if (chosen == PreferenceFormat.Relabeled)
            return (chosen, (await PreferenceDataFiles.ReadAsync(path, ct)).Select(FromRelabeled).ToList());
        return (chosen, rows.Select(r => Map(chosen, r.Where, r.Row)).ToList());
    }

    /// <summary>
    /// Preference pairs of any format as the relabeled rows the length task's offline runs and train-rm read: a relabeled
    /// file's rows as they are; any other pair format's with the prompt rendered through <paramref name="template"/>,
    /// y_w and y_l as prompt + response, and its scores (1 and 0 where the format has none: only their order is known).
    /// </summary>
    /// <exception cref="ArgumentException">The file cannot be read, or holds prompts only (named).</exception>
    /// <param name="template">Asked for only when a row's prompt is a conversation (a model's chat template that PrefTune
    /// cannot render then fails the read, not a file of text prompts).</param>
    public static async Task<IReadOnlyList<PreferenceRow>> ReadPairsAsync(string path, Func<PromptTemplate> template, CancellationToken ct = default)
    {
        var rows = await ReadRowsAsync(path, ct);
        var format = Detect(path, rows[0].Row);
        if (format == PreferenceFormat.Relabeled) return await PreferenceDataFiles.ReadAsync(path, ct);
        if (format == PreferenceFormat.PromptOnly)
            throw new ArgumentException($"{path}: prompt-only data has no chosen and rejected responses; pairs are needed here");
        var rendering = new Lazy<PromptTemplate>(template);
        return rows.Select(r => Map(format, r.Where, r.Row))
            .Select(e => ToRelabeled(e, e.PromptMessages is null ? PromptTemplate.Plain : rendering.Value)).ToList();
    }

    private static PreferenceRow ToRelabeled(PreferenceExample e, PromptTemplate template)
    {
        var prompt = e.Prompt(template);
        var (w, l) = (e.ChosenScore ?? 1, e.RejectedScore ?? 0);
        return new PreferenceRow(prompt, prompt + e.Chosen, prompt + e.Rejected, w, l, w - l, null) { Where = e.Where };
    }

    /// <summary>A relabeled row as an example: y_w and y_l without the prompt (or after the assistant marker).</summary>
    private static PreferenceExample FromRelabeled(PreferenceRow row)
    {
        var where = row.Where ?? "memory";
        string Response(string text, string column)
        {
            if (text.StartsWith(row.Prompt, StringComparison.Ordinal)) return text[row.Prompt.Length..];
            var marker = text.LastIndexOf(AssistantMarker, StringComparison.Ordinal);
            return marker >= 0 ? text[(marker + AssistantMarker.Length)..]
                : throw new ArgumentException($"{where}, column {column}: neither starts with the prompt nor holds {AssistantMarker}");
        }
        return new(where, row.Prompt, null, Response(row.YW, "y_w"), Response(row.YL, "y_l"), row.YWScore, row.YLScore);
    }

    /// <summary>One row of <paramref name="format"/> as an example: the column mapping of every format, in one place.</summary>
    public static PreferenceExample Map(PreferenceFormat format, string where, JsonObject row)
    {
        var cells = new Cells(where, row);
        switch (format)
        {
            case PreferenceFormat.TrlStandard:
                return new(where, cells.Text("prompt"), null, cells.Text("chosen"), cells.Text("rejected"));
            case PreferenceFormat.TrlConversational:
                return new(where, null, cells.Messages("prompt"), cells.LastAssistant("chosen"), cells.LastAssistant("rejected"));
            case PreferenceFormat.PromptOnly:
                return row["prompt"] is JsonArray
                    ? new(where, null, cells.Messages("prompt"), null, null)
                    : new(where, cells.Text("prompt"), null, null, null);
            case PreferenceFormat.AlpacaFarm:
            {
                var input = row["input"] is null ? "" : cells.Text("input");
                var instruction = cells.Text("instruction");
                var preference = cells.Number("preference");
                if (preference is not (1 or 2)) throw new ArgumentException($"{where}, column preference: {preference} is neither 1 nor 2");
                var (first, second) = (cells.Text("output_1"), cells.Text("output_2"));
                return new(where, null, [new ChatMessage("user", input == "" ? instruction : $"{instruction}\n{input}")],
                    preference == 1 ? first : second, preference == 1 ? second : first);
            }
            case PreferenceFormat.UltraFeedback:
            {
                var (chosen, rejected) = (cells.Messages("chosen"), cells.Messages("rejected"));
                var prompt = SharedTurns(where, chosen, rejected);
                return new(where, null, prompt, cells.LastAssistant("chosen"), cells.LastAssistant("rejected"),
                    cells.Number("score_chosen"), cells.Number("score_rejected"));
            }
            case PreferenceFormat.AnthropicHh:
            {
                var (chosen, rejected) = (cells.Text("chosen"), cells.Text("rejected"));
                var cut = chosen.LastIndexOf(HhAssistant, StringComparison.Ordinal);
                if (cut < 0) throw new ArgumentException($"{where}, column chosen: no \"\\n\\nAssistant:\" turn to split the prompt at");
                var prompt = chosen[..(cut + HhAssistant.Length)];
                if (!rejected.StartsWith(prompt, StringComparison.Ordinal))
                    throw new ArgumentException($"{where}, column rejected: does not share chosen's dialogue up to its last assistant turn");
                return new(where, prompt, null, chosen[prompt.Length..], rejected[prompt.Length..]);
            }
            case PreferenceFormat.Relabeled:
                throw new ArgumentException($"{where}: relabeled rows are read by PreferenceDataFiles (PreferenceFormats.ReadAsync does)");
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, null);
        }
    }

    /// <summary>A format by its <see cref="NameOf"/> name; an unknown name is an error listing the known ones.</summary>
    public static PreferenceFormat Named(string name)
    {
        foreach (var format in Enum.GetValues<PreferenceFormat>())
            if (NameOf(format) == name) return format;
        throw new ArgumentException($"format '{name}' is not one PrefTune reads; known: {string.Join(", ", Enum.GetValues<PreferenceFormat>().Select(NameOf))}");
    }

    /// <summary>
    /// Writes <paramref name="examples"/> as JSONL in <paramref name="format"/>, the inverse of <see cref="Map"/>: what is read
    /// back is the same prompt, chosen and rejected (HH's responses gain the space after "Assistant:" that HH's text has).
    /// A text prompt becomes one user turn where the format holds conversations; a conversation becomes text through
    /// <paramref name="template"/> where it holds text. AlpacaFarm's preference alternates 1, 2 by row so both are written.
    /// Never overwrites a file.
    /// </summary>
    public static void WriteJsonl(string path, PreferenceFormat format, IReadOnlyList<PreferenceExample> examples, PromptTemplate template)
    {
        if (format == PreferenceFormat.Relabeled)
        {
            PreferenceDataFiles.WriteJsonl(path, examples.Select(e => ToRelabeled(e with
            {
                Chosen = e.Chosen ?? throw new ArgumentException($"{e.Where}: has no chosen response, which relabeled needs"),
                Rejected = e.Rejected ?? throw new ArgumentException($"{e.Where}: has no rejected response, which relabeled needs"),
            }, template)).ToList());
            return;
        }
        var rows = examples.Select((e, i) => Unmap(format, e, i, template).ToJsonString(Readable)).ToList();
        using var writer = new StreamWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write), new System.Text.UTF8Encoding(false));
        foreach (var row in rows) writer.Write(row + "\n");
    }

    private static readonly JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static JsonObject Unmap(PreferenceFormat format, PreferenceExample e, int index, PromptTemplate template)
    {
        IReadOnlyList<ChatMessage> turns = e.PromptMessages ?? [new ChatMessage("user", e.PromptText!)];
        var text = e.Prompt(template);
        string Response(string? response, string what) =>
            response ?? throw new ArgumentException($"{e.Where}: has no {what} response, which {NameOf(format)} needs");
        JsonArray Messages(IEnumerable<ChatMessage> messages) =>
            new(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray());
        JsonArray Assistant(string content) => Messages([new ChatMessage("assistant", content)]);
        string UserText() => turns is [{ Role: "user" } only] ? only.Content
            : throw new ArgumentException($"{e.Where}: {NameOf(format)} holds one user instruction; this prompt has {turns.Count} turns");
        switch (format)
        {
            case PreferenceFormat.TrlStandard:
                return new JsonObject { ["prompt"] = text, ["chosen"] = Response(e.Chosen, "chosen"), ["rejected"] = Response(e.Rejected, "rejected") };
            case PreferenceFormat.TrlConversational:
                return new JsonObject { ["prompt"] = Messages(turns), ["chosen"] = Assistant(Response(e.Chosen, "chosen")), ["rejected"] = Assistant(Response(e.Rejected, "rejected")) };
            case PreferenceFormat.PromptOnly:
                return new JsonObject { ["prompt"] = e.PromptMessages is null ? text : Messages(turns) };
            case PreferenceFormat.AlpacaFarm:
            {
                var first = index % 2 == 0;
                var (chosen, rejected) = (Response(e.Chosen, "chosen"), Response(e.Rejected, "rejected"));
                return new JsonObject
                {
                    ["instruction"] = UserText(), ["input"] = "",
                    ["output_1"] = first ? chosen : rejected, ["output_2"] = first ? rejected : chosen, ["preference"] = first ? 1 : 2,
                };
            }
            case PreferenceFormat.UltraFeedback:
            {
                var chosen = Messages([.. turns, new ChatMessage("assistant", Response(e.Chosen, "chosen"))]);
                return new JsonObject
                {
                    ["prompt"] = UserText(),
                    ["prompt_id"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(UserText()))),
                    ["chosen"] = chosen,
                    ["rejected"] = Messages([.. turns, new ChatMessage("assistant", Response(e.Rejected, "rejected"))]),
                    ["messages"] = chosen.DeepClone(),
                    ["score_chosen"] = e.ChosenScore ?? 1, ["score_rejected"] = e.RejectedScore ?? 0,
                };
            }
            case PreferenceFormat.AnthropicHh:
            {
                var dialogue = e.PromptMessages is null && e.PromptText!.EndsWith(HhAssistant, StringComparison.Ordinal) ? e.PromptText : PromptTemplate.Hh.Render(turns);
                return new JsonObject { ["chosen"] = $"{dialogue} {Response(e.Chosen, "chosen")}", ["rejected"] = $"{dialogue} {Response(e.Rejected, "rejected")}" };
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, null);
        }
    }

    /// <summary>The turns before the last of two conversations that must agree on them (the prompt of a conversational pair).</summary>
    private static IReadOnlyList<ChatMessage> SharedTurns(string where, IReadOnlyList<ChatMessage> chosen, IReadOnlyList<ChatMessage> rejected)
    {
        var prompt = chosen.Take(chosen.Count - 1).ToList();
        if (prompt.Count == 0) throw new ArgumentException($"{where}, column chosen: holds no prompt before its assistant turn");
        if (rejected.Count != chosen.Count || !prompt.SequenceEqual(rejected.Take(rejected.Count - 1)))
            throw new ArgumentException($"{where}, column rejected: its turns before the last differ from chosen's");
        return prompt;
    }

    /// <summary>Typed reads of a row's cells, each failure naming the place and the column.</summary>
    private readonly record struct Cells(string Where, JsonObject Row)
    {
        private JsonNode Value(string column) =>
            Row.TryGetPropertyValue(column, out var value) ? value ?? throw new ArgumentException($"{Where}, column {column}: null")
                : throw new ArgumentException($"{Where}, column {column}: missing");

        public string Text(string column) => Value(column) is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new ArgumentException($"{Where}, column {column}: expected text");

        public double Number(string column) => Value(column) is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d
            : throw new ArgumentException($"{Where}, column {column}: expected a finite number");

        public IReadOnlyList<ChatMessage> Messages(string column)
        {
            if (Value(column) is not JsonArray list || list.Count == 0)
                throw new ArgumentException($"{Where}, column {column}: expected a non-empty list of {{role, content}} messages");
            var where = Where;
            return list.Select((m, i) => m is JsonObject o && o["role"] is JsonValue r && r.TryGetValue<string>(out var role)
                    && o["content"] is JsonValue c && c.TryGetValue<string>(out var content)
                    ? new ChatMessage(role, content)
                    : throw new ArgumentException($"{where}, column {column}, message {i}: expected {{role, content}} strings")).ToList();
        }

        /// <summary>The response of a conversational column: its last message, which must be the assistant's.</summary>
        public string LastAssistant(string column)
        {
            var last = Messages(column)[^1];
            return last.Role == "assistant" ? last.Content
                : throw new ArgumentException($"{Where}, column {column}: its last message is '{last.Role}', expected the assistant's response");
        }
    }
}

using System.Text;
using System.Text.Json;

namespace PrefTune.Training.LanguageModels;

/// <summary>One turn of a conversation, in TRL's conversational form ({role, content}).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// How a conversation becomes the text a model was trained on. Each named template renders a conversation exactly as
/// its reference implementation does (the Jinja chat templates of the models that use it, or the paper's format), with
/// <see cref="Render"/>'s generation prompt opening the assistant's turn that the policy then writes. Templates are
/// shapes, not code: a tokenizer_config.json chat_template is recognised as one of these by its markers
/// (<see cref="FromTokenizerConfig"/>) and anything else is refused by name rather than rendered approximately.
/// </summary>
public abstract class PromptTemplate
{
    /// <summary>The name an experiment file or a command gives.</summary>
    public abstract string Name { get; }

    /// <summary>The conversation as text. With <paramref name="addGenerationPrompt"/> it ends by opening an assistant turn.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        if (messages.Count == 0) throw new ArgumentException("a conversation needs at least one message", nameof(messages));
        for (var i = 0; i < messages.Count; i++)
            if (messages[i].Role is not ("system" or "user" or "assistant"))
                throw new ArgumentException($"message {i}: role '{messages[i].Role}' is not one of system, user, assistant", nameof(messages));
        var text = new StringBuilder();
        RenderTo(text, messages, addGenerationPrompt);
        return text.ToString();
    }

    protected abstract void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

    /// <summary>A single instruction (and an optional input, AlpacaFarm's second field) as a one-turn prompt.</summary>
    public virtual string Instruction(string instruction, string input = "") =>
        Render([new ChatMessage("user", input == "" ? instruction : $"{instruction}\n{input}")]);

    public static readonly PromptTemplate Plain = new PlainTemplate();
    public static readonly PromptTemplate Paper = new PrompterTemplate();
    public static readonly PromptTemplate Hh = new HhTemplate();
    public static readonly PromptTemplate Llama2 = new Llama2Template();
    public static readonly PromptTemplate ChatMl = new ChatMlTemplate();
    public static readonly PromptTemplate Llama3 = new Llama3Template();

    public static IReadOnlyList<PromptTemplate> All { get; } = [Plain, Paper, Hh, Llama2, ChatMl, Llama3];

    /// <summary>The template of that name; an unknown name is an error listing the known ones.</summary>
    public static PromptTemplate Named(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"template '{name}' is not one PrefTune renders; known: {string.Join(", ", All.Select(t => t.Name))}");

    /// <summary>
    /// The template a tokenizer_config.json's chat_template is, recognised by the markers of its shape; null when the
    /// file has none. A chat_template of another shape is an error naming the file and the start of the template: it
    /// is never approximated by a template that would render other text than the model was trained on.
    /// </summary>
    public static PromptTemplate? FromTokenizerConfig(string file)
    {
        JsonElement template;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            if (!document.RootElement.TryGetProperty("chat_template", out var found)) return null;
            template = found.Clone();
        }
        catch (JsonException e) { throw new ArgumentException($"{file}: not JSON ({e.Message})"); }
        // Some configs hold a list of named templates; the conversation one is "default".
        if (template.ValueKind == JsonValueKind.Array)
            template = template.EnumerateArray().FirstOrDefault(t => t.TryGetProperty("name", out var n) && n.GetString() == "default")
                is { ValueKind: JsonValueKind.Object } named ? named.GetProperty("template") : default;
        if (template.ValueKind != JsonValueKind.String)
            throw new ArgumentException($"{file}: chat_template is neither a string nor a list holding a \"default\" template");
        var jinja = template.GetString()!;
        return Recognise(jinja)
            ?? throw new ArgumentException($"{file}: chat_template is not one of the shapes PrefTune renders ({string.Join(", ", All.Select(t => t.Name))}); "
                + $"it starts \"{Abbreviate(jinja)}\"; name a template instead");
    }

    /// <summary>The template whose markers <paramref name="jinja"/> uses, or null.</summary>
    public static PromptTemplate? Recognise(string jinja) =>
        jinja.Contains("<|start_header_id|>") && jinja.Contains("<|eot_id|>") ? Llama3
        : jinja.Contains("<|im_start|>") && jinja.Contains("<|im_end|>") ? ChatMl
        : jinja.Contains("[INST]") && jinja.Contains("[/INST]") ? Llama2
        : jinja.Contains("<|prompter|>") && jinja.Contains("<|assistant|>") ? Paper
        : null;

    private static string Abbreviate(string text)
    {
        var flat = text.ReplaceLineEndings(" ");
        return flat.Length <= 60 ? flat : flat[..60] + "...";
    }

    private static IEnumerable<ChatMessage> Turns(IReadOnlyList<ChatMessage> messages, out string? system)
    {
        system = messages[0].Role == "system" ? messages[0].Content : null;
        return system is null ? messages : messages.Skip(1);
    }

    /// <summary>The turns as written, each after a blank line; a generation prompt adds nothing (the text simply goes on).</summary>
    private sealed class PlainTemplate : PromptTemplate
    {
        public override string Name => "plain";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
            text.AppendJoin("\n\n", messages.Select(m => m.Content));

        public override string Instruction(string instruction, string input = "") => input == "" ? instruction : $"{instruction}\n{input}";
    }

    /// <summary>The paper's (Pythia SFT on AlpacaFarm, OpenAssistant's markers): &lt;|prompter|&gt;{instruction}\n{input}&lt;|endoftext|&gt;&lt;|assistant|&gt;.</summary>
    private sealed class PrompterTemplate : PromptTemplate
    {
        public override string Name => "prompter";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
        {
            foreach (var m in messages)
                text.Append(m.Role switch { "system" => "<|system|>", "user" => "<|prompter|>", _ => "<|assistant|>" }).Append(m.Content).Append("<|endoftext|>");
            if (addGenerationPrompt) text.Append("<|assistant|>");
        }
    }

    /// <summary>Anthropic HH's dialogue text: "\n\nHuman: ...\n\nAssistant: ..." (a system message is written first, as it is).</summary>
    private sealed class HhTemplate : PromptTemplate
    {
        public override string Name => "hh";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
        {
            var turns = Turns(messages, out var system);
            if (system is not null) text.Append(system);
            foreach (var m in turns) text.Append(m.Role == "user" ? "\n\nHuman: " : "\n\nAssistant: ").Append(m.Content);
            if (addGenerationPrompt) text.Append("\n\nAssistant:");
        }
    }

    /// <summary>Llama-2-chat: &lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user} [/INST] {assistant} &lt;/s&gt;, as its chat_template writes it
    /// (bos and eos as text; the tokenizer maps them to their ids).</summary>
    private sealed class Llama2Template : PromptTemplate
    {
        public override string Name => "llama-2";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
        {
            var first = true;
            var index = 0;
            foreach (var m in Turns(messages, out var system))
            {
                // its chat_template refuses anything but user, assistant, user, ... after the system message
                if ((m.Role == "user") != (index++ % 2 == 0))
                    throw new ArgumentException($"llama-2: message {index - 1 + (system is null ? 0 : 1)} is '{m.Role}': after an optional system message the roles must alternate user, assistant, user, ...");
                if (m.Role == "user")
                {
                    var content = first && system is not null ? $"<<SYS>>\n{system}\n<</SYS>>\n\n{m.Content}" : m.Content;
                    text.Append("<s>[INST] ").Append(content.Trim()).Append(" [/INST]");
                }
                else text.Append(' ').Append(m.Content.Trim()).Append(" </s>");
                first = false;
            }
            // the open [INST] ... [/INST] already asks for the assistant's turn: nothing to add
        }
    }

    /// <summary>ChatML (Qwen, many others): &lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n per message.</summary>
    private sealed class ChatMlTemplate : PromptTemplate
    {
        public override string Name => "chatml";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
        {
            foreach (var m in messages) text.Append("<|im_start|>").Append(m.Role).Append('\n').Append(m.Content).Append("<|im_end|>\n");
            if (addGenerationPrompt) text.Append("<|im_start|>assistant\n");
        }
    }

    /// <summary>Llama-3 headers: &lt;|begin_of_text|&gt; then &lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content, trimmed}&lt;|eot_id|&gt; per message.</summary>
    private sealed class Llama3Template : PromptTemplate
    {
        public override string Name => "llama-3";

        protected override void RenderTo(StringBuilder text, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
        {
            text.Append("<|begin_of_text|>");
            foreach (var m in messages)
                text.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n").Append(m.Content.Trim()).Append("<|eot_id|>");
            if (addGenerationPrompt) text.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
    }
}

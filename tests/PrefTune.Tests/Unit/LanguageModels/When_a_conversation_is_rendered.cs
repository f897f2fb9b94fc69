using PrefTune.Training.LanguageModels;
using Xunit;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// Each named template renders a two-turn conversation exactly as its reference does: the expected strings are the
/// renderings of the models' own Jinja chat templates (Llama-2-chat, ChatML, Llama-3-Instruct), of the paper's format
/// (PAPER.md: &lt;|prompter|&gt;{instruction}\n{input}&lt;|endoftext|&gt;&lt;|assistant|&gt;) and of Anthropic HH's dialogue text,
/// written out by hand from those templates.
/// </summary>
public sealed class When_a_conversation_is_rendered : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("preftune-templates-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly ChatMessage[] TwoTurns =
    [
        new("user", "Hello"),
        new("assistant", "Hi there"),
        new("user", "How are you?"),
    ];

    public static TheoryData<string, string> Renderings => new()
    {
        { "plain", "Hello\n\nHi there\n\nHow are you?" },
        { "prompter", "<|prompter|>Hello<|endoftext|><|assistant|>Hi there<|endoftext|><|prompter|>How are you?<|endoftext|><|assistant|>" },
        { "hh", "\n\nHuman: Hello\n\nAssistant: Hi there\n\nHuman: How are you?\n\nAssistant:" },
        { "llama-2", "<s>[INST] Hello [/INST] Hi there </s><s>[INST] How are you? [/INST]" },
        { "chatml", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n" },
        { "llama-3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            + "Hi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
    };

    [Theory]
    [MemberData(nameof(Renderings))]
    public void A_two_turn_conversation_renders_exactly(string template, string expected) =>
        Assert.Equal(expected, PromptTemplate.Named(template).Render(TwoTurns));

    [Fact]
    public void A_system_message_goes_where_each_template_puts_it()
    {
        ChatMessage[] withSystem = [new("system", "Be brief."), new("user", "Hello"), new("assistant", "Hi"), new("user", "Bye")];

        Assert.Equal("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST] Hi </s><s>[INST] Bye [/INST]", PromptTemplate.Llama2.Render(withSystem));
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
            PromptTemplate.ChatMl.Render(withSystem, addGenerationPrompt: false));
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>", PromptTemplate.Llama3.Render(withSystem));
    }

    [Fact]
    public void The_papers_instruction_format_has_the_input_on_its_own_line()
    {
        Assert.Equal("<|prompter|>Sort these numbers.\n3, 1, 2<|endoftext|><|assistant|>", PromptTemplate.Paper.Instruction("Sort these numbers.", "3, 1, 2"));
        Assert.Equal("<|prompter|>Name a colour.<|endoftext|><|assistant|>", PromptTemplate.Paper.Instruction("Name a colour."));
        Assert.Equal("Name a colour.", PromptTemplate.Plain.Instruction("Name a colour."));
    }

    [Fact]
    public void Llama3_trims_each_message_as_its_template_does_and_llama2_refuses_roles_out_of_turn()
    {
        Assert.Contains("\n\nHello<|eot_id|>", PromptTemplate.Llama3.Render([new("user", "  Hello \n")]));
        var error = Assert.Throws<ArgumentException>(() => PromptTemplate.Llama2.Render([new("user", "a"), new("user", "b")]));
        Assert.Contains("message 1 is 'user'", error.Message);
        Assert.Throws<ArgumentException>(() => PromptTemplate.ChatMl.Render([new("tool", "x")]));
    }

    private string Config(string chatTemplateJson)
    {
        var file = Path.Combine(_folder, $"tokenizer_config-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, $$"""{"bos_token": "<s>", "chat_template": {{chatTemplateJson}}}""");
        return file;
    }

    [Fact]
    public void A_tokenizer_configs_chat_template_is_recognised_by_its_shape()
    {
        // the chat templates as the models' tokenizer_config.json files hold them (JSON strings of Jinja)
        const string llama3 = """
            "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
            """;
        const string chatml = """
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
            """;
        const string llama2 = """
            "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'].strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
            """;

        Assert.Same(PromptTemplate.Llama3, PromptTemplate.FromTokenizerConfig(Config(llama3)));
        Assert.Same(PromptTemplate.ChatMl, PromptTemplate.FromTokenizerConfig(Config(chatml)));
        Assert.Same(PromptTemplate.Llama2, PromptTemplate.FromTokenizerConfig(Config($$"""[{"name": "default", "template": {{llama2}}}, {"name": "tool_use", "template": "x"}]""")));
        // stories260K's tokenizer_config.json has no chat template: nothing to recognise
        Assert.Null(PromptTemplate.FromTokenizerConfig(Path.Combine(Fixtures.StoriesHf, "tokenizer_config.json")));
    }

    [Fact]
    public void An_unsupported_chat_template_or_name_is_refused_naming_it()
    {
        var file = Config("\"{{ bos_token }}{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}\"");
        var error = Assert.Throws<ArgumentException>(() => PromptTemplate.FromTokenizerConfig(file));
        Assert.Contains(file, error.Message);
        Assert.Contains("{{ bos_token }}{% for m in messages %}### ", error.Message);
        Assert.Contains("llama-3", error.Message);

        var unknown = Assert.Throws<ArgumentException>(() => PromptTemplate.Named("vicuna"));
        Assert.Contains("'vicuna'", unknown.Message);
        Assert.Contains("chatml", unknown.Message);
    }
}

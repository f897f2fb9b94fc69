using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Tasks.Length;

namespace PrefTune.Training.Tasks;

/// <summary>Prompt texts as a language model's prompts: encoded with its tokenizer (BOS included where it adds one), each
/// checked to encode to something and to fit the model's context with max_new_tokens after it.</summary>
public static class TextPrompts
{
    /// <summary>Encodes <paramref name="texts"/> in order, ids <paramref name="idPrefix"/>0, 1, ...</summary>
    /// <exception cref="ArgumentException">A prompt that encodes to nothing or does not fit (its <c>Where</c> named).</exception>
    public static IReadOnlyList<Prompt> Encode(IEnumerable<(string Where, string Text)> texts, LanguageModelSpec model, string idPrefix = "p")
    {
        var config = Checkpoints.ReadConfig(model.Path);
        var tokenizerPath = LengthTask.TokenizerPath(model);
        using var tokenizer = TextTokenizers.Load(tokenizerPath);
        TokenizerChecks.EnsureFits(tokenizer, config, tokenizerPath);
        var prompts = new List<Prompt>();
        foreach (var (where, text) in texts)
        {
            var tokens = tokenizer.Encode(text);
            if (tokens.Length == 0)
                throw new ArgumentException($"{where}: the prompt encodes to no tokens");
            if (tokens.Length + model.MaxNewTokens > config.MaxPositions)
                throw new ArgumentException($"{where}: the prompt has {tokens.Length} tokens; with max_new_tokens = {model.MaxNewTokens} "
                    + $"it exceeds the model's context of {config.MaxPositions}");
            prompts.Add(new Prompt { PromptId = $"{idPrefix}{prompts.Count}", Tokens = tokens });
        }
        return prompts;
    }
}

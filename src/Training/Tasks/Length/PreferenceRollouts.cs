using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;

namespace PrefTune.Training.Tasks.Length;

/// <summary>
/// A preference-pairs file as D_pref (<see cref="LengthSpec.Dataset"/>), in any pair format PrefTune reads
/// (<see cref="Datasets.PreferenceFormats.ReadPairsAsync"/>): row i becomes prompt group i of two rollouts,
/// y_w (sample 2i) rewarded with y_w_score and y_l (sample 2i + 1) with y_l_score, tokenized with the policy's tokenizer.
/// </summary>
public static class PreferenceRollouts
{
    /// <summary>Each row is one prompt group of this many rollouts: y_w and y_l.</summary>
    public const int ResponsesPerRow = 2;

    /// <summary>Reads <paramref name="file"/> and converts its rows for the policy <paramref name="model"/> names.</summary>
    /// <param name="keep">Which rows to keep, by their prompt's text (null: all); a task that holds prompts out for
    /// evaluation keeps their rows out of D_pref.</param>
    /// <exception cref="ArgumentException">The file cannot be read or a row cannot be a response of this policy (file, row and column named).</exception>
    public static async Task<IReadOnlyList<TrainingSample>> ReadAsync(string file, LanguageModelSpec model, Guid batchId,
        Func<string, bool>? keep = null, CancellationToken ct = default)
    {
        var tokenizerPath = LengthTask.TokenizerPath(model);
        var config = Checkpoints.ReadConfig(model.Path);
        var rows = await Datasets.PreferenceFormats.ReadPairsAsync(file, TemplateOf(model), ct);
        using var tokenizer = TextTokenizers.Load(tokenizerPath);
        var stop = LanguageModelFamily.StopIdsOf(model, config);
        var kept = keep is null ? rows : rows.Where(r => keep(r.Prompt)).ToList();
        return FromRows(kept, tokenizer, stop.Count > 0 ? stop[0] : null, model.MaxNewTokens, config.MaxPositions, batchId, file);
    }

    /// <summary>How a dataset's conversations are rendered for this policy: the chat template of its tokenizer_config.json
    /// where it has one PrefTune knows, else plain text (asked for only when a prompt is a conversation).</summary>
    public static Func<PromptTemplate> TemplateOf(LanguageModelSpec model) => TemplateBeside(LengthTask.TokenizerPath(model));

    /// <summary>The chat template of the tokenizer_config.json beside <paramref name="tokenizerPath"/>, else plain text.</summary>
    public static Func<PromptTemplate> TemplateBeside(string tokenizerPath)
    {
        var templateConfig = Path.Combine(Path.GetDirectoryName(tokenizerPath) ?? "", "tokenizer_config.json");
        return () => (File.Exists(templateConfig) ? PromptTemplate.FromTokenizerConfig(templateConfig) : null) ?? PromptTemplate.Plain;
    }

    /// <summary>
    /// The conversion: prompt ids = encode(prompt); a response's ids are those of encode(y) after the prompt's ids when they
    /// are its prefix (the ids the policy would have produced after that prompt), else encode(y's text after the prompt)
    /// without its BOS (a tokenizer that merges across the boundary; the nearest ids there are). Sample ids are
    /// <see cref="SampleIds.Of"/>(batchId, index), so the same file and batch give the same ids; PolicyVersion 0 (the
    /// reference's version, like sampled D_pref).
    /// </summary>
    /// <remarks>
    /// The file does not say whether a response ended. One shorter than max_new_tokens is taken as stopped (the first stop
    /// id appended, Finish = Stop): the Sampler stops every response it does not cut, and that is what a DPO trainer on such
    /// pairs does too (TRL appends EOS), so pi(y|x) includes the decision to stop there, as it does for sampled responses.
    /// One of exactly max_new_tokens (or any when the policy has no stop id) is taken as truncated (Finish = Length): the
    /// Sampler cuts there without a stop token. Longer is refused: the policy could never produce it. TokenLogProbs are
    /// zeros: the policy that wrote the file is unknown, and no offline method reads them (importance ratios of such a run
    /// therefore read log pi_theta(y) itself).
    /// </remarks>
    public static IReadOnlyList<TrainingSample> FromRows(IReadOnlyList<PreferenceRow> rows, ITextTokenizer tokenizer, int? stopId, int maxNewTokens,
        int maxPositions, Guid batchId, string file)
    {
        var samples = new List<TrainingSample>(ResponsesPerRow * rows.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            var where = row.NamedIn(file, i);
            var prompt = tokenizer.Encode(row.Prompt);
            if (prompt.Length == 0) throw new ArgumentException($"{where}, column prompt: encodes to no tokens");
            foreach (var (text, score, column, index) in new[] { (row.YW, row.YWScore, "y_w", 0), (row.YL, row.YLScore, "y_l", 1) })
            {
                var response = ResponseIds(text, row.Prompt, prompt, tokenizer, $"{where}, column {column}");
                if (response.Length > maxNewTokens)
                    throw new ArgumentException($"{where}, column {column}: the response has {response.Length} tokens, more than max_new_tokens = {maxNewTokens} "
                        + "(the policy could never produce it; raise task.model.max_new_tokens or shorten the data)");
                var stopped = stopId is not null && response.Length < maxNewTokens;
                int[] tokens = stopped ? [.. response, stopId!.Value] : response;
                if (prompt.Length + tokens.Length > maxPositions)
                    throw new ArgumentException($"{where}, column {column}: prompt and response hold {prompt.Length + tokens.Length} tokens, more than the model's context of {maxPositions}");
                samples.Add(new TrainingSample
                {
                    Rollout = new Rollout
                    {
                        SampleId = SampleIds.Of(batchId, 2 * i + index),
                        PromptId = $"r{i}",
                        Group = i,
                        PromptTokens = prompt,
                        ResponseTokens = tokens,
                        TokenLogProbs = new float[tokens.Length],
                        PolicyVersion = 0,
                        Finish = stopped ? FinishReason.Stop : FinishReason.Length,
                    },
                    Reward = score,
                });
            }
        }
        return samples;
    }

    /// <summary>A response's ids after <paramref name="prompt"/>'s within encode(prompt + response) (shared with SFT's data).</summary>
    internal static int[] ResponseIds(string text, string promptText, int[] prompt, ITextTokenizer tokenizer, string where)
    {
        var whole = tokenizer.Encode(text);
        if (whole.Length >= prompt.Length && whole.AsSpan(0, prompt.Length).SequenceEqual(prompt))
            return whole[prompt.Length..];
        if (!text.StartsWith(promptText, StringComparison.Ordinal))
            throw new ArgumentException($"{where}: does not start with the row's prompt (y_w and y_l hold prompt + response)");
        var alone = tokenizer.Encode(text[promptText.Length..]);
        return alone.Length > 0 && alone[0] == tokenizer.BosId ? alone[1..] : alone;
    }
}

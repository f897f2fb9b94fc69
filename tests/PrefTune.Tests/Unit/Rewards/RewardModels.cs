using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.Rewards;

/// <summary>Reward models and tokenizers the reward tests read: the tiny-gpt-neox-rm fixture in place, and files the
/// tests write into a temp folder of this process (a random classifier over the stories vocabulary, a word tokenizer).</summary>
internal static class RewardModels
{
    public static string TinyRm => Fixtures.Tiny("tiny-gpt-neox-rm");
    public static string StoriesTokenizer => Path.Combine(Fixtures.StoriesHf, "tokenizer.json");

    private static readonly string Folder = Path.Combine(Path.GetTempPath(), $"preftune-rewards-{Environment.ProcessId}");

    /// <summary>A random LlamaForSequenceClassification over 512 ids (the stories vocabulary), from a config.json written
    /// here and saved with <see cref="Checkpoints.SaveHf"/>: no tokenizer beside it.</summary>
    public static readonly Lazy<string> Random512 = new(() => RandomClassifier("random-llama-rm-512-ctx512", labels: 1));

    /// <summary>The same shape with two labels: a sound classifier, but not a reward model (one scalar).</summary>
    public static readonly Lazy<string> TwoLabels = new(() => RandomClassifier("random-llama-classifier-2-ctx512", labels: 2));

    /// <summary>The 512-id reward model with a context of 256: shorter than stories260K's.</summary>
    public static readonly Lazy<string> ShortContext = new(() => RandomClassifier("random-llama-rm-512-ctx256", labels: 1, positions: 256));

    /// <summary>The 512-id reward model's shape with other random weights (seed 513): a second opinion, as a proxy beside a gold one.</summary>
    public static readonly Lazy<string> Random512Other = new(() => RandomClassifier("random-llama-rm-512-seed513", labels: 1, seed: 513));

    private static string RandomClassifier(string name, int labels, int positions = 512, int seed = 512)
    {
        var directory = Path.Combine(Folder, name);
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForSequenceClassification"),
            ["model_type"] = "llama",
            ["vocab_size"] = 512, ["hidden_size"] = 16, ["intermediate_size"] = 32, ["num_hidden_layers"] = 1,
            ["num_attention_heads"] = 2, ["num_key_value_heads"] = 2, ["max_position_embeddings"] = positions,   // 512, stories260K's context: a prompt and its response always fit
            ["rms_norm_eps"] = 1e-6, ["hidden_act"] = "silu", ["num_labels"] = labels, ["pad_token_id"] = 0,
            ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };
        var config = LanguageModelConfig.FromHfConfig(json, "config.json");
        lock (TorchRuntime.GlobalSeedLock)
        {
            manual_seed(seed);
            using var model = new LanguageModel(config);
            Checkpoints.SaveHf(model, directory);
        }
        return directory;
    }

    /// <summary>The random 512-id classifier loaded (shared by the registry tests; never disposed, as the fixture lives for the run).</summary>
    public static readonly Lazy<RewardModelScorer> Random512Scorer = new(() => RewardModelScorer.Load(new RewardModelSpec { Path = Random512.Value }));

    /// <summary>A WordLevel tokenizer.json over <paramref name="words"/> (ids 1.., [UNK] 0), split on whitespace and
    /// punctuation: text in, ids nothing like the stories tokenizer's.</summary>
    public static string WordTokenizer(string name, IReadOnlyList<string> words)
    {
        Directory.CreateDirectory(Folder);
        var vocab = new JsonObject { ["[UNK]"] = 0 };
        for (var i = 0; i < words.Count; i++) vocab[words[i]] = i + 1;
        var json = new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 0, ["content"] = "[UNK]", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" },
            ["post_processor"] = null,
            ["decoder"] = null,
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "[UNK]" },
        };
        var file = Path.Combine(Folder, name + ".tokenizer.json");
        File.WriteAllText(file, json.ToJsonString());
        return file;
    }

    /// <summary>A copy of the stories tokenizer.json under another name: the same bytes, so the same tokenizer.</summary>
    public static readonly Lazy<string> StoriesTokenizerCopy = new(() =>
    {
        Directory.CreateDirectory(Folder);
        var file = Path.Combine(Folder, "copy-of-stories.tokenizer.json");
        File.Copy(StoriesTokenizer, file, overwrite: true);
        return file;
    });

    public static Rollout Rollout(int[] prompt, int[] response, FinishReason? finish = FinishReason.Length) => new()
    {
        SampleId = Guid.NewGuid(), PromptId = "p0", Group = 0, PromptTokens = prompt, ResponseTokens = response,
        TokenLogProbs = new float[response.Length], PolicyVersion = 0, Finish = finish,
    };

    /// <summary>Label 0's score of one unpadded sequence, straight from <see cref="LanguageModel.Scores"/>.</summary>
    public static double Direct(LanguageModel model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return model.Scores(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]))[0, 0].item<float>();
    }
}

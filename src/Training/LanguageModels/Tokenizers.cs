using System.Text;
using System.Text.Json.Nodes;

namespace PrefTune.Training.LanguageModels;

/// <summary>Text to token ids and back, whichever file the vocabulary came from.</summary>
public interface ITextTokenizer : IDisposable
{
    /// <summary>Ids the vocabulary covers: 0..VocabSize-1 (must fit the model's vocab_size).</summary>
    int VocabSize { get; }
    int? BosId { get; }
    int? EosId { get; }

    /// <summary>The ids of a prompt, with the tokenizer's own conventions (BOS first, SentencePiece's leading space).</summary>
    int[] Encode(string text);

    /// <summary>The text of ids, special tokens left out (the inverse of <see cref="Encode"/>).</summary>
    string Decode(IReadOnlyList<int> ids);
}

/// <summary>Opens a tokenizer: a model directory's tokenizer.json, a tokenizer.json file, or a llama2.c tokenizer .bin.</summary>
public static class TextTokenizers
{
    /// <summary>The text the new tokens add after the prompt (decoded together, so SentencePiece's spaces come out right).</summary>
    public static string Continuation(this ITextTokenizer tokenizer, IReadOnlyList<int> prompt, IReadOnlyList<int> ids)
    {
        var promptText = tokenizer.Decode(prompt);
        var full = tokenizer.Decode([.. prompt, .. ids]);
        return full.StartsWith(promptText, StringComparison.Ordinal) ? full[promptText.Length..] : tokenizer.Decode(ids);
    }

    public static ITextTokenizer Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, "tokenizer.json");
        if (!File.Exists(path)) throw new ModelLoadException(path, null, "no such tokenizer file");
        return path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? new HfTokenizer(path) : new Llama2cTokenizer(path);
    }
}

/// <summary>
/// A Hugging Face tokenizer.json, run by Hugging Face's own Rust tokenizers library (Tokenizers.DotNet).
/// BOS and EOS come from tokenizer_config.json beside it (bos_token, eos_token), looked up in the file's added tokens.
/// </summary>
public sealed class HfTokenizer : ITextTokenizer
{
    private readonly Tokenizers.DotNet.Tokenizer tokenizer;
    private readonly HashSet<int> special;

    public HfTokenizer(string file)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new System.Text.Json.JsonException("not an object");
            tokenizer = new Tokenizers.DotNet.Tokenizer(vocabPath: file);
        }
        catch (Exception e) when (e is not ModelLoadException)
        {
            throw new ModelLoadException(file, null, "not a tokenizer.json Hugging Face tokenizers can read: " + e.Message);
        }
        var added = (json["added_tokens"] as JsonArray ?? []).Select(t => (Id: t!["id"]!.GetValue<int>(), Content: t["content"]!.GetValue<string>(), Special: t["special"]?.GetValue<bool>() ?? false)).ToList();
        special = added.Where(t => t.Special).Select(t => t.Id).ToHashSet();
        var vocab = json["model"]?["vocab"] as JsonObject;
        VocabSize = Math.Max(vocab?.Select(kv => kv.Value!.GetValue<int>()).DefaultIfEmpty(-1).Max() ?? -1, added.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;

        var configFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json");
        var config = File.Exists(configFile) ? JsonNode.Parse(File.ReadAllText(configFile)) as JsonObject : null;
        // tokenizer_config.json writes a special token as its text or as {"content": text, ...}.
        int? IdOf(string key)
        {
            var content = config?[key] switch
            {
                JsonValue v when v.TryGetValue<string>(out var text) => text,
                JsonObject o => o["content"]?.GetValue<string>(),
                _ => null,
            };
            return added.Where(t => t.Content == content).Select(t => (int?)t.Id).FirstOrDefault();
        }
        BosId = IdOf("bos_token");
        EosId = IdOf("eos_token");
    }

    public int VocabSize { get; }
    public int? BosId { get; }
    public int? EosId { get; }

    public int[] Encode(string text) => tokenizer.Encode(text).Select(id => (int)id).ToArray();

    public string Decode(IReadOnlyList<int> ids) =>
        tokenizer.Decode(ids.Where(id => !special.Contains(id)).Select(id => (uint)id).ToArray());

    public void Dispose() => (tokenizer as IDisposable)?.Dispose();
}

/// <summary>
/// llama2.c's tokenizer .bin (tok512.bin, tokenizer.bin): int32 max_token_length, then per token a float32 score,
/// an int32 byte length and the UTF-8 bytes. Encoding is run.c's <c>encode(text, bos=1, eos=0)</c> exactly: BOS,
/// a dummy-prefix space for non-empty text, each UTF-8 character as its piece or else as byte tokens (id = byte + 3),
/// then repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (the leftmost on ties).
/// </summary>
public sealed class Llama2cTokenizer : ITextTokenizer
{
    private readonly byte[][] pieces;
    private readonly float[] scores;
    private readonly Dictionary<string, int> ids = new(StringComparer.Ordinal);   // piece (bytes as Latin-1 chars) -> id

    public Llama2cTokenizer(string file)
    {
        using var reader = new BinaryReader(File.OpenRead(file));
        var p = new List<byte[]>();
        var s = new List<float>();
        try
        {
            reader.ReadInt32();   // max_token_length: run.c sizes a buffer with it; nothing to size here
            while (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                s.Add(reader.ReadSingle());
                var length = reader.ReadInt32();
                if (length < 0 || length > reader.BaseStream.Length - reader.BaseStream.Position)
                    throw new ModelLoadException(file, null, $"token {p.Count} has length {length}: not a llama2.c tokenizer");
                p.Add(reader.ReadBytes(length));
            }
        }
        catch (EndOfStreamException)
        {
            throw new ModelLoadException(file, null, $"truncated after {p.Count} tokens: not a llama2.c tokenizer");
        }
        pieces = p.ToArray();
        scores = s.ToArray();
        // run.c sorts the vocabulary and bsearches it; with distinct pieces the first id per piece is the same answer.
        for (var id = 0; id < pieces.Length; id++) ids.TryAdd(Key(pieces[id]), id);
    }

    public int VocabSize => pieces.Length;
    public int? BosId => 1;
    public int? EosId => 2;

    private static string Key(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    public int[] Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var tokens = new List<int> { 1 };
        if (bytes.Length > 0 && ids.TryGetValue(" ", out var space)) tokens.Add(space);
        // One UTF-8 character at a time: a lead byte and its continuation bytes (0b10xxxxxx), at most 4, as run.c groups them.
        for (var i = 0; i < bytes.Length;)
        {
            var end = i + 1;
            while (end < bytes.Length && (bytes[end] & 0xC0) == 0x80 && end - i < 4) end++;
            if (ids.TryGetValue(Key(bytes[i..end]), out var id)) tokens.Add(id);
            else for (var j = i; j < end; j++) tokens.Add(bytes[j] + 3);   // byte fallback: <0x00> is id 3
            i = end;
        }
        while (true)
        {
            var (best, bestId, bestAt) = (-1e10f, -1, -1);
            for (var i = 1; i < tokens.Count; i++)
            {
                if (ids.TryGetValue(Key([.. pieces[tokens[i - 1]], .. pieces[tokens[i]]]), out var merged) && scores[merged] > best)
                    (best, bestId, bestAt) = (scores[merged], merged, i - 1);
            }
            if (bestAt < 0) break;
            tokens[bestAt] = bestId;
            tokens.RemoveAt(bestAt + 1);
        }
        return tokens.ToArray();
    }

    /// <summary>run.c's decode: byte tokens become their byte, the first piece after BOS (or at the start) loses its leading space.</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>();
        var previous = 1;
        foreach (var id in ids)
        {
            if (id < 3) { previous = id; continue; }   // <unk>, BOS, EOS: not text
            var piece = pieces[id];
            if (id < 259 && piece.Length == 6 && piece[0] == '<' && piece[1] == '0' && piece[2] == 'x')
                bytes.Add(Convert.ToByte(Encoding.ASCII.GetString(piece, 3, 2), 16));
            else
                bytes.AddRange(previous == 1 && piece.Length > 0 && piece[0] == ' ' ? piece[1..] : piece);
            previous = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public void Dispose() { }
}

/// <summary>Checks that pair a tokenizer with a model.</summary>
public static class TokenizerChecks
{
    /// <summary>Every id the tokenizer can produce must index the model's embedding.</summary>
    public static void EnsureFits(ITextTokenizer tokenizer, LanguageModelConfig model, string tokenizerFile)
    {
        if (tokenizer.VocabSize > model.VocabSize)
            throw new ModelLoadException(tokenizerFile, null,
                $"the tokenizer has {tokenizer.VocabSize} tokens but {model.Architecture} embeds only {model.VocabSize}: not this model's tokenizer");
    }
}

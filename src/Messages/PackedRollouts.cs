using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrefTune.Messages;

/// <summary>
/// The compact form of a batch of rollouts, scores or training samples, on the wire and in the event store: one JSON
/// object <c>{"format": "preftune-rollouts/1", "count": N, "sha256": H, "data": base64}</c> instead of N objects with
/// arrays of numbers. A language model's response costs about 6 bytes a token packed against about 16 as JSON (a float
/// log-prob in text takes 10 to 13 characters), and a prompt is written once per group of C responses instead of C times.
/// The SHA-256 of the data is checked on every read, so a damaged batch fails naming itself rather than training on
/// noise. Readers accept the JSON array form too: runs recorded before packing replay unchanged.
/// <para>Layout, little-endian, per rollout: SampleId (16 bytes), a flags byte (1: same prompt as the previous rollout;
/// 2: has ReferenceLogProb; 4/8: Finish is Stop/Length), Group and PolicyVersion (7-bit varints), then unless flag 1
/// the PromptId (length-prefixed UTF-8) and the prompt tokens (count, varints), the response tokens (count, varints),
/// the token log-probs (count, float32), ReferenceLogProb (float64) when flagged, and a training sample's reward
/// (float64). Floats are stored bit for bit: a packed batch trains to the same checkpoint hash as the JSON one.</para>
/// </summary>
public static class PackedRollouts
{
    public const string RolloutsFormat = "preftune-rollouts/1";
    public const string SamplesFormat = "preftune-samples/1";
    public const string ScoresFormat = "preftune-scores/1";

    private const byte SamePrompt = 1, HasReference = 2, FinishedStop = 4, FinishedLength = 8;

    public static byte[] Pack(IReadOnlyList<Rollout> rollouts, IReadOnlyList<double>? rewards = null)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            Rollout? previous = null;
            for (var i = 0; i < rollouts.Count; i++)
            {
                var r = rollouts[i];
                var same = previous is not null && previous.PromptId == r.PromptId && previous.PromptTokens.AsSpan().SequenceEqual(r.PromptTokens);
                var flags = (byte)((same ? SamePrompt : 0) | (r.ReferenceLogProb is not null ? HasReference : 0)
                    | r.Finish switch { FinishReason.Stop => FinishedStop, FinishReason.Length => FinishedLength, _ => 0 });
                writer.Write(r.SampleId.ToByteArray());
                writer.Write(flags);
                writer.Write7BitEncodedInt(r.Group);
                writer.Write7BitEncodedInt(r.PolicyVersion);
                if (!same)
                {
                    writer.Write(r.PromptId);
                    WriteTokens(writer, r.PromptTokens);
                }
                WriteTokens(writer, r.ResponseTokens);
                writer.Write7BitEncodedInt(r.TokenLogProbs.Length);
                foreach (var logProb in r.TokenLogProbs) writer.Write(logProb);
                if (r.ReferenceLogProb is { } reference) writer.Write(reference);
                if (rewards is not null) writer.Write(rewards[i]);
                previous = r;
            }
        }
        return stream.ToArray();
    }

    /// <summary>The rollouts of <see cref="Pack"/>'s bytes, and their rewards when <paramref name="withRewards"/>.</summary>
    public static (List<Rollout> Rollouts, List<double> Rewards) Unpack(byte[] data, int count, bool withRewards)
    {
        var rollouts = new List<Rollout>(count);
        var rewards = new List<double>(withRewards ? count : 0);
        using var reader = new BinaryReader(new MemoryStream(data, writable: false), Encoding.UTF8);
        Rollout? previous = null;
        for (var i = 0; i < count; i++)
        {
            var sampleId = new Guid(reader.ReadBytes(16));
            var flags = reader.ReadByte();
            var group = reader.Read7BitEncodedInt();
            var version = reader.Read7BitEncodedInt();
            if ((flags & SamePrompt) != 0 && previous is null)
                throw new InvalidDataException($"rollout {i} reuses the previous prompt, but it is the first");
            var promptId = (flags & SamePrompt) != 0 ? previous!.PromptId : reader.ReadString();
            var promptTokens = (flags & SamePrompt) != 0 ? previous!.PromptTokens : ReadTokens(reader);
            var responseTokens = ReadTokens(reader);
            var logProbs = new float[reader.Read7BitEncodedInt()];
            for (var t = 0; t < logProbs.Length; t++) logProbs[t] = reader.ReadSingle();
            var rollout = new Rollout
            {
                SampleId = sampleId, PromptId = promptId, Group = group, PromptTokens = promptTokens, ResponseTokens = responseTokens,
                TokenLogProbs = logProbs, PolicyVersion = version,
                ReferenceLogProb = (flags & HasReference) != 0 ? reader.ReadDouble() : null,
                Finish = (flags & FinishedStop) != 0 ? FinishReason.Stop : (flags & FinishedLength) != 0 ? FinishReason.Length : null,
            };
            if (withRewards) rewards.Add(reader.ReadDouble());
            rollouts.Add(rollout);
            previous = rollout;
        }
        if (reader.BaseStream.Position != reader.BaseStream.Length)
            throw new InvalidDataException($"{reader.BaseStream.Length - reader.BaseStream.Position} bytes left after {count} rollouts");
        return (rollouts, rewards);
    }

    public static byte[] PackScores(IReadOnlyList<RolloutScore> scores)
    {
        var bytes = new byte[scores.Count * 32];
        for (var i = 0; i < scores.Count; i++)
        {
            var span = bytes.AsSpan(i * 32, 32);
            scores[i].SampleId.TryWriteBytes(span[..16]);
            BitConverter.TryWriteBytes(span[16..24], scores[i].Reward);
            BitConverter.TryWriteBytes(span[24..], scores[i].GoldReward);
        }
        return bytes;
    }

    public static List<RolloutScore> UnpackScores(byte[] data, int count)
    {
        if (data.Length != count * 32) throw new InvalidDataException($"{data.Length} bytes for {count} scores of 32 bytes");
        return Enumerable.Range(0, count).Select(i => new RolloutScore
        {
            SampleId = new Guid(data.AsSpan(i * 32, 16)),
            Reward = BitConverter.ToDouble(data, i * 32 + 16),
            GoldReward = BitConverter.ToDouble(data, i * 32 + 24),
        }).ToList();
    }

    private static void WriteTokens(BinaryWriter writer, int[] tokens)
    {
        writer.Write7BitEncodedInt(tokens.Length);
        foreach (var token in tokens) writer.Write7BitEncodedInt(token);
    }

    private static int[] ReadTokens(BinaryReader reader)
    {
        var tokens = new int[reader.Read7BitEncodedInt()];
        for (var t = 0; t < tokens.Length; t++) tokens[t] = reader.Read7BitEncodedInt();
        return tokens;
    }

    internal static void WriteEnvelope(Utf8JsonWriter writer, string format, int count, byte[] data)
    {
        writer.WriteStartObject();
        writer.WriteString("format", format);
        writer.WriteNumber("count", count);
        writer.WriteString("sha256", Convert.ToHexStringLower(SHA256.HashData(data)));
        writer.WriteBase64String("data", data);
        writer.WriteEndObject();
    }

    /// <summary>Reads an envelope of <paramref name="format"/>: its count and its data, verified against its hash.</summary>
    internal static (int Count, byte[] Data) ReadEnvelope(ref Utf8JsonReader reader, string format)
    {
        string? found = null, hash = null;
        int? count = null;
        byte[]? data = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = reader.GetString();
            reader.Read();
            switch (name)
            {
                case "format": found = reader.GetString(); break;
                case "count": count = reader.GetInt32(); break;
                case "sha256": hash = reader.GetString(); break;
                case "data": data = reader.GetBytesFromBase64(); break;
                default: reader.Skip(); break;   // a later version's extra field
            }
        }
        if (found != format) throw new JsonException($"packed batch: format '{found}', expected '{format}'");
        if (count is null || data is null || hash is null) throw new JsonException($"packed batch ({format}): count, sha256 and data are required");
        var actual = Convert.ToHexStringLower(SHA256.HashData(data));
        if (actual != hash) throw new JsonException($"packed batch ({format}) of {count} is damaged: its {data.Length} bytes hash to {actual}, expected {hash}");
        return (count.Value, data);
    }
}

/// <summary>Writes a list of rollouts packed; reads packed or, as recorded before packing, a JSON array.</summary>
public sealed class PackedRolloutsConverter : JsonConverter<IReadOnlyList<Rollout>>
{
    public override IReadOnlyList<Rollout>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartArray) return JsonSerializer.Deserialize<List<Rollout>>(ref reader, options);
        var (count, data) = PackedRollouts.ReadEnvelope(ref reader, PackedRollouts.RolloutsFormat);
        return Unpacked(() => PackedRollouts.Unpack(data, count, withRewards: false).Rollouts);
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<Rollout> value, JsonSerializerOptions options) =>
        PackedRollouts.WriteEnvelope(writer, PackedRollouts.RolloutsFormat, value.Count, PackedRollouts.Pack(value));

    internal static T Unpacked<T>(Func<T> unpack)
    {
        try { return unpack(); }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException)
        {
            throw new JsonException($"packed batch: {e.Message}", e);
        }
    }
}

/// <summary>Training samples (rollout and reward) packed as <see cref="PackedRolloutsConverter"/> packs rollouts.</summary>
public sealed class PackedSamplesConverter : JsonConverter<IReadOnlyList<TrainingSample>>
{
    public override IReadOnlyList<TrainingSample>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartArray) return JsonSerializer.Deserialize<List<TrainingSample>>(ref reader, options);
        var (count, data) = PackedRollouts.ReadEnvelope(ref reader, PackedRollouts.SamplesFormat);
        var (rollouts, rewards) = PackedRolloutsConverter.Unpacked(() => PackedRollouts.Unpack(data, count, withRewards: true));
        return rollouts.Select((r, i) => new TrainingSample { Rollout = r, Reward = rewards[i] }).ToList();
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<TrainingSample> value, JsonSerializerOptions options) =>
        PackedRollouts.WriteEnvelope(writer, PackedRollouts.SamplesFormat, value.Count,
            PackedRollouts.Pack(value.Select(s => s.Rollout).ToList(), value.Select(s => s.Reward).ToList()));
}

/// <summary>Scores packed 32 bytes each (id, reward, gold reward); reads packed or a JSON array.</summary>
public sealed class PackedScoresConverter : JsonConverter<IReadOnlyList<RolloutScore>>
{
    public override IReadOnlyList<RolloutScore>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartArray) return JsonSerializer.Deserialize<List<RolloutScore>>(ref reader, options);
        var (count, data) = PackedRollouts.ReadEnvelope(ref reader, PackedRollouts.ScoresFormat);
        return PackedRolloutsConverter.Unpacked(() => PackedRollouts.UnpackScores(data, count));
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<RolloutScore> value, JsonSerializerOptions options) =>
        PackedRollouts.WriteEnvelope(writer, PackedRollouts.ScoresFormat, value.Count, PackedRollouts.PackScores(value));
}

/// <summary>Sample ids packed 16 bytes each (a batch names B of them, each gradient step M); reads packed or a JSON array.</summary>
public sealed class PackedIdsConverter : JsonConverter<IReadOnlyList<Guid>>
{
    public override IReadOnlyList<Guid>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartArray) return JsonSerializer.Deserialize<List<Guid>>(ref reader, options);
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"sample ids: expected an array or a base64 string, found {reader.TokenType}");
        var data = reader.GetBytesFromBase64();
        if (data.Length % 16 != 0) throw new JsonException($"sample ids: {data.Length} bytes is not a whole number of 16-byte ids");
        return Enumerable.Range(0, data.Length / 16).Select(i => new Guid(data.AsSpan(i * 16, 16))).ToList();
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<Guid> value, JsonSerializerOptions options)
    {
        var data = new byte[value.Count * 16];
        for (var i = 0; i < value.Count; i++) value[i].TryWriteBytes(data.AsSpan(i * 16, 16));
        writer.WriteBase64StringValue(data);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using Xunit;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>Rollouts, scores, training samples and sample ids travel and are recorded packed (<see cref="PackedRollouts"/>).</summary>
public class When_rollouts_are_packed
{
    // MassTransit's System.Text.Json settings: what goes on the wire
    private static readonly JsonSerializerOptions Wire = MassTransit.Serialization.SystemTextJsonMessageSerializer.Options;

    private static Rollout LanguageModelRollout(int i, int group, Random random) => new()
    {
        SampleId = Guid.NewGuid(), PromptId = $"p{group}", Group = group,
        PromptTokens = [1, 403, 407, 261, 378, 100 + group],
        ResponseTokens = Enumerable.Range(0, 60 + i).Select(_ => random.Next(0, 32000)).ToArray(),
        TokenLogProbs = Enumerable.Range(0, 60 + i).Select(_ => -(float)random.NextDouble() * 7).ToArray(),
        PolicyVersion = 7, ReferenceLogProb = i % 2 == 0 ? -123.456789012345 : null,
        Finish = i % 3 == 0 ? FinishReason.Stop : i % 3 == 1 ? FinishReason.Length : null,
    };

    private static List<Rollout> Batch(int groups = 4, int c = 4)
    {
        var random = new Random(3);
        return Enumerable.Range(0, groups * c).Select(i => LanguageModelRollout(i, i / c, random)).ToList();
    }

    private static void SameRollouts(IReadOnlyList<Rollout> expected, IReadOnlyList<Rollout> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var (e, a) = (expected[i], actual[i]);
            Assert.Equal((e.SampleId, e.PromptId, e.Group, e.PolicyVersion, e.Finish), (a.SampleId, a.PromptId, a.Group, a.PolicyVersion, a.Finish));
            Assert.Equal(e.PromptTokens, a.PromptTokens);
            Assert.Equal(e.ResponseTokens, a.ResponseTokens);
            // bit for bit: a replayed batch must train to the same checkpoint hash
            Assert.Equal(e.TokenLogProbs.Select(BitConverter.SingleToInt32Bits), a.TokenLogProbs.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(e.ReferenceLogProb is { } r ? BitConverter.DoubleToInt64Bits(r) : (long?)null,
                a.ReferenceLogProb is { } s ? BitConverter.DoubleToInt64Bits(s) : (long?)null);
        }
    }

    private static RolloutsGenerated Generated(IReadOnlyList<Rollout> rollouts) => new()
    {
        RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Purpose = RolloutPurpose.Training, Iteration = 2, PolicyVersion = 7, Rollouts = rollouts,
    };

    [Fact]
    public void A_batch_round_trips_through_the_wire_serializer_exactly()
    {
        var rollouts = Batch();
        rollouts[5] = rollouts[5] with { TokenLogProbs = [float.NegativeInfinity, -0f, float.Epsilon, -1e-30f] };
        var json = JsonSerializer.Serialize(Generated(rollouts), Wire);
        Assert.Equal(PackedRollouts.RolloutsFormat, JsonNode.Parse(json)!["rollouts"]!["format"]!.GetValue<string>());
        SameRollouts(rollouts, JsonSerializer.Deserialize<RolloutsGenerated>(json, Wire)!.Rollouts);
    }

    [Fact]
    public void A_batch_recorded_as_a_json_array_before_packing_still_reads()
    {
        var rollouts = Batch(2, 2);
        var packed = JsonNode.Parse(JsonSerializer.Serialize(Generated(rollouts), Wire))!;
        // the form runs recorded before packing have: each rollout an object
        packed["rollouts"] = JsonNode.Parse(JsonSerializer.Serialize(rollouts, Wire));
        Assert.IsType<JsonArray>(packed["rollouts"]);
        SameRollouts(rollouts, JsonSerializer.Deserialize<RolloutsGenerated>(packed.ToJsonString(), Wire)!.Rollouts);
    }

    [Fact]
    public void A_language_model_batch_is_less_than_half_its_json_size()
    {
        var rollouts = Batch();
        var packed = JsonSerializer.Serialize(Generated(rollouts), Wire).Length;
        var json = JsonSerializer.Serialize(rollouts, Wire).Length;
        Assert.True(packed < json / 2.0, $"packed {packed} bytes against {json} as JSON");
    }

    [Fact]
    public void A_damaged_batch_fails_naming_its_hash()
    {
        var node = JsonNode.Parse(JsonSerializer.Serialize(Generated(Batch()), Wire))!;
        var data = Convert.FromBase64String(node["rollouts"]!["data"]!.GetValue<string>());
        data[40] ^= 0x10;
        node["rollouts"]!["data"] = Convert.ToBase64String(data);
        var e = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<RolloutsGenerated>(node.ToJsonString(), Wire));
        Assert.Contains("is damaged", e.Message);
        Assert.Contains(node["rollouts"]!["sha256"]!.GetValue<string>(), e.Message);
    }

    [Fact]
    public void A_prompt_is_written_once_per_group()
    {
        var rollouts = Batch(groups: 1, c: 8);
        var oneGroup = PackedRollouts.Pack(rollouts).Length;
        var everyOneItsOwn = PackedRollouts.Pack(rollouts.Select((r, i) => r with { PromptId = $"q{i}" }).ToList()).Length;
        // 7 prompts not repeated: each is its id (3 bytes) and 6 tokens (up to 2 bytes each, plus a count)
        Assert.InRange(everyOneItsOwn - oneGroup, 7 * (3 + 1 + 6), 7 * (3 + 1 + 12));
    }

    [Fact]
    public void Training_samples_scores_and_ids_round_trip_with_their_numbers()
    {
        var rollouts = Batch(2, 3);
        var train = new TrainPolicy
        {
            RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Iteration = 0, Task = new TaskSpec { Kind = "bandit" }, Method = new MethodSpec { Name = "rloo" },
            Loop = new LoopSpec(), Policy = new CheckpointRef { Version = 0, Sha256 = new string('a', 64), Uri = "pg://x", Bytes = 1 },
            Reference = new CheckpointRef { Version = 0, Sha256 = new string('a', 64), Uri = "pg://x", Bytes = 1 },
            Samples = rollouts.Select((r, i) => new TrainingSample { Rollout = r, Reward = i * 0.1 - 0.25 }).ToList(), Seed = 5,
        };
        var back = JsonSerializer.Deserialize<TrainPolicy>(JsonSerializer.Serialize(train, Wire), Wire)!;
        SameRollouts(rollouts, back.Samples.Select(s => s.Rollout).ToList());
        Assert.Equal(train.Samples.Select(s => s.Reward), back.Samples.Select(s => s.Reward));

        var scored = new RolloutsScored
        {
            RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Purpose = RolloutPurpose.Evaluation, RewardQueries = 6,
            Scores = rollouts.Select((r, i) => new RolloutScore { SampleId = r.SampleId, Reward = -i / 3.0, GoldReward = Math.PI * i }).ToList(),
        };
        var scoresBack = JsonSerializer.Deserialize<RolloutsScored>(JsonSerializer.Serialize(scored, Wire), Wire)!;
        Assert.Equal(scored.Scores, scoresBack.Scores);

        var assembled = new TrainingBatchAssembled
        {
            RunId = Guid.NewGuid(), BatchId = Guid.NewGuid(), Iteration = 1, Source = DataSource.Online, PolicyVersion = 3,
            SampleIds = rollouts.Select(r => r.SampleId).ToList(),
        };
        var idsJson = JsonSerializer.Serialize(assembled, Wire);
        Assert.Equal(assembled.SampleIds, JsonSerializer.Deserialize<TrainingBatchAssembled>(idsJson, Wire)!.SampleIds);
        var asArray = JsonNode.Parse(idsJson)!;
        asArray["sampleIds"] = JsonNode.Parse(JsonSerializer.Serialize(assembled.SampleIds));
        Assert.Equal(assembled.SampleIds, JsonSerializer.Deserialize<TrainingBatchAssembled>(asArray.ToJsonString(), Wire)!.SampleIds);
    }
}

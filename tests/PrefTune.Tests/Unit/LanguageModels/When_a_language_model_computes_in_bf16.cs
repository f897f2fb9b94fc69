using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Methods;
using PrefTune.Training.Optimization;
using PrefTune.Training.Policies;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// bf16 mixed precision (MixedPrecision.cs) against float32 on stories260K, a real pretrained Llama: the same log-probs to
/// bf16's rounding, gradients on the float32 weights that point the same way, cached weight copies that follow every
/// optimizer step, and a short DPO run that learns as float32 does.
/// </summary>
public class When_a_language_model_computes_in_bf16(ITestOutputHelper output)
{
    /// <summary>Largest |bf16 - fp32| of a token log-prob allowed. bf16 keeps 8 significant bits, so a matmul's output is
    /// off by about 2^-9 of its size; through 5 layers and the head this batch measured 0.030 at most (mean 0.0055): the
    /// bound leaves 3x room for other libtorch builds' kernels.</summary>
    public const double TokenTolerance = 0.1;
    /// <summary>Largest |bf16 - fp32| of a sequence's summed log-prob (21 to 40 tokens); measured 0.034, token errors
    /// partly cancel.</summary>
    public const double SumTolerance = 0.2;

    private static SequenceScores Score(LanguageModel model, Precision precision, bool cacheWeights = true)
    {
        using var noGrad = no_grad();
        using var mode = MixedPrecision.Use(precision, cacheWeights);
        return SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, When_fp32_scoring_is_pinned.Batch()), tokens: true);
    }

    private static float[] Values(Tensor t) => t.to_type(ScalarType.Float32).data<float>().ToArray();

    [Fact]
    public void Log_probs_of_stories260K_are_within_tolerance_of_fp32()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        using var scope = NewDisposeScope();
        var (fp32, bf16) = (Score(model, Precision.Fp32), Score(model, Precision.Bf16));
        Assert.Equal(ScalarType.Float32, bf16.Tokens!.dtype);   // the log-softmax ran in float32
        var tokenDiff = (bf16.Tokens - fp32.Tokens!).abs();
        var (maxToken, meanToken) = (tokenDiff.max().item<float>(), (tokenDiff.sum() / fp32.Mask.sum()).item<float>());
        var maxSum = (bf16.Sum - fp32.Sum).abs().max().item<float>();
        output.WriteLine($"|bf16 - fp32| token log-prob: max {maxToken:g3}, mean {meanToken:g3}; sequence sum: max {maxSum:g3}");
        output.WriteLine($"fp32 sums {string.Join(", ", Values(fp32.Sum))}; bf16 {string.Join(", ", Values(bf16.Sum))}");
        Assert.True(maxToken > 0, "bf16 gave float32's numbers exactly: nothing was cast");
        Assert.True(maxToken < TokenTolerance, $"max token |diff| {maxToken:g3}");
        Assert.True(maxSum < SumTolerance, $"max sum |diff| {maxSum:g3}");
        Assert.Equal(0, (bf16.Tokens * (1 - bf16.Mask)).abs().sum().item<float>());   // still zero past each response
    }

    [Fact]
    public void Gpt_neox_scores_in_bf16_too()
    {
        // tiny-gpt-neox (random weights, vocabulary 96): the fused query_key_value, partial rotary, parallel residual and
        // LayerNorm path, on the same padded batch with its ids folded into the vocabulary.
        using var model = Fixtures.Load(Fixtures.Tiny("tiny-gpt-neox"));
        var batch = When_fp32_scoring_is_pinned.Batch().Select(s => new TokenSequence(s.Prompt.Select(i => i % 96).ToArray(), s.Response.Select(i => i % 96).ToArray())).ToList();
        using var scope = NewDisposeScope();
        SequenceScores Scores(Precision precision)
        {
            using var mode = MixedPrecision.Use(precision);
            return SequenceLogProbs.Score(model, SequenceLogProbs.Pack(model, batch), tokens: true);
        }
        var (fp32, bf16) = (Scores(Precision.Fp32), Scores(Precision.Bf16));
        var maxToken = (bf16.Tokens! - fp32.Tokens!).abs().max().item<float>();
        output.WriteLine($"tiny-gpt-neox |bf16 - fp32| token log-prob: max {maxToken:g3}");
        Assert.True(maxToken is > 0 and < (float)TokenTolerance, $"max token |diff| {maxToken:g3}");
        bf16.Sum.sum().backward();
        Assert.All(model.parameters(), p => Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, "a weight got no gradient"));
    }

    [Fact]
    public void The_policy_family_scores_in_its_specs_precision()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        using var policy = new LanguageModelPolicy(model);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rollouts = When_fp32_scoring_is_pinned.Batch().Select((s, i) => new Rollout
        {
            SampleId = new Guid(i + 1, 0, 0, new byte[8]), PromptId = "p", Group = i, PromptTokens = s.Prompt, ResponseTokens = s.Response,
            TokenLogProbs = new float[s.Response.Length], PolicyVersion = 0, Finish = FinishReason.Length,
        }).ToList();
        LanguageModelFamily Family(Precision p) => new(new LanguageModelSpec { Path = Fixtures.StoriesHf, Precision = p });
        Assert.Equal(Values(Score(model, Precision.Fp32).Sum), Values(Family(Precision.Fp32).SequenceLogProbs(policy, rollouts)));
        Assert.Equal(Values(Score(model, Precision.Bf16).Sum), Values(Family(Precision.Bf16).SequenceLogProbs(policy, rollouts)));
        Assert.Equal(Values(Score(model, Precision.Bf16).Tokens!), Values(Family(Precision.Bf16).ScoreTokens(policy, rollouts).LogProbs));
    }

    [Fact]
    public void Gradients_reach_the_float32_weights_pointing_as_fp32s_do()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        Tensor[] Gradients(Precision precision)
        {
            using var scope = NewDisposeScope();
            model.zero_grad();
            using (MixedPrecision.Use(precision))
                SequenceLogProbs.Sum(model, When_fp32_scoring_is_pinned.Batch()).sum().backward();
            return model.parameters().Select(p => p.grad!.clone().DetachFromDisposeScope()).ToArray();
        }
        var fp32 = Gradients(Precision.Fp32);
        var bf16 = Gradients(Precision.Bf16);
        var names = model.named_parameters().Select(p => p.name).ToArray();
        using var scope = NewDisposeScope();
        var worst = (Cosine: 1.0, Ratio: 1.0, Name: "");
        for (var i = 0; i < fp32.Length; i++)
        {
            Assert.Equal(ScalarType.Float32, bf16[i].dtype);
            var cosine = (double)(fp32[i] * bf16[i]).sum().item<float>() / (fp32[i].norm().item<float>() * bf16[i].norm().item<float>());
            var ratio = (double)bf16[i].norm().item<float>() / fp32[i].norm().item<float>();
            if (cosine < worst.Cosine) worst = (cosine, ratio, names[i]);
            Assert.True(cosine > 0.98, $"{names[i]}: cosine(bf16 grad, fp32 grad) = {cosine:g4}");
            Assert.True(ratio is > 0.9 and < 1.1, $"{names[i]}: |bf16 grad| / |fp32 grad| = {ratio:g4}");
        }
        output.WriteLine($"{fp32.Length} weights; lowest cosine(bf16 grad, fp32 grad) {worst.Cosine:g4} ({worst.Name}, norm ratio {worst.Ratio:g4})");
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));   // the master weights stay float32
        foreach (var g in fp32.Concat(bf16)) g.Dispose();
    }

    [Fact]
    public void Cached_weight_copies_follow_an_optimizer_step_and_serve_several_backward_passes()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        using var optimizer = new PolicyOptimizer(model.parameters(), new OptimizerSettings(), learningRate: 1e-2, totalSteps: 2);
        using var scope = NewDisposeScope();
        var before = Values(Score(model, Precision.Bf16).Sum);                               // fills the cache
        Assert.Equal(Values(Score(model, Precision.Bf16, cacheWeights: false).Sum), before);
        // Every matmul weight (the 2-D ones: 5 layers x 7 Linear, and the tied embedding) holds one copy, found again by the
        // weight each module hands out.
        var matmulWeights = model.parameters().Count(p => p.dim() == 2);
        Assert.Equal(36, matmulWeights);
        Assert.Equal(matmulWeights, MixedPrecision.CachedCopies(model.parameters()));
        Score(model, Precision.Bf16);
        Assert.Equal(matmulWeights, MixedPrecision.CachedCopies(model.parameters()));

        // Two backward passes through the same cached copies add up, as two through fresh casts do.
        optimizer.ZeroGrad();
        using (MixedPrecision.Use(Precision.Bf16))
            for (var pass = 0; pass < 2; pass++)
                SequenceLogProbs.Sum(model, When_fp32_scoring_is_pinned.Batch()).sum().backward();
        var twice = model.parameters().First().grad!.clone();
        optimizer.ZeroGrad();
        using (MixedPrecision.Use(Precision.Bf16, cacheWeights: false))
            SequenceLogProbs.Sum(model, When_fp32_scoring_is_pinned.Batch()).sum().backward();
        Assert.True(allclose(twice, 2 * model.parameters().First().grad!, rtol: 1e-5, atol: 1e-6), "two passes through cached copies are not twice one");

        optimizer.Step();
        Assert.Equal(0, MixedPrecision.CachedCopies(model.parameters()));
        var after = Values(Score(model, Precision.Bf16).Sum);
        Assert.NotEqual(before, after);
        Assert.Equal(Values(Score(model, Precision.Bf16, cacheWeights: false).Sum), after);   // no stale copy was read
    }

    [Fact]
    public void Sampling_refuses_bf16_since_the_kv_cache_is_float32()
    {
        using var model = Fixtures.Load(Fixtures.StoriesHf);
        using var mode = MixedPrecision.Use(Precision.Bf16);
        Assert.Throws<InvalidOperationException>(() => Fixtures.Greedy(model, [1, 403, 407], 4));
    }

    [Fact]
    public void A_short_dpo_run_lowers_the_loss_in_bf16_as_in_fp32()
    {
        var text = When_fp32_scoring_is_pinned.Batch();
        // Two prompt groups of C = 2: the first response of each preferred.
        SequenceSample Sample(int id, TokenSequence s, double reward) => new(new Guid(id, 0, 0, new byte[8]), s, reward, new float[s.Response.Length]);
        SequenceSample[] samples =
        [
            Sample(1, text[0], 1), Sample(2, text[0] with { Response = text[1].Response }, 0),
            Sample(3, text[2], 1), Sample(4, text[2] with { Response = text[0].Response[..10] }, 0),
        ];
        double[] Run(Precision precision)
        {
            using var policy = Fixtures.Load(Fixtures.StoriesHf);
            using var frozen = Fixtures.Load(Fixtures.StoriesHf);
            using var mode = MixedPrecision.Use(precision);
            var reference = ReferenceLogProbs.Compute(frozen, samples.Select(s => (s.Id, s.Sequence)).ToList(), microBatch: 2);
            using var optimizer = new PolicyOptimizer(policy.parameters(), new OptimizerSettings(), learningRate: 3e-3, totalSteps: 8);
            var loss = new Dpo(beta: 0.1, threshold: 0);
            return Enumerable.Range(0, 8).Select(_ =>
            {
                using var scope = NewDisposeScope();
                return SequenceTraining.Step(policy, optimizer, loss, reference, samples, c: 2, microBatch: 2).Loss.Loss;   // accumulated over 2
            }).ToArray();
        }
        var fp32 = Run(Precision.Fp32);
        var bf16 = Run(Precision.Bf16);
        output.WriteLine($"DPO loss per step, fp32: {string.Join(", ", fp32.Select(l => l.ToString("F4")))}");
        output.WriteLine($"DPO loss per step, bf16: {string.Join(", ", bf16.Select(l => l.ToString("F4")))}");
        Assert.Equal(Math.Log(2), bf16[0], 2);                     // pi = pi_ref at the start, in either precision
        Assert.True(fp32[^1] < 0.5 * Math.Log(2), $"fp32 final loss {fp32[^1]:F4}");
        Assert.True(bf16[^1] < 0.5 * Math.Log(2), $"bf16 final loss {bf16[^1]:F4}");
        Assert.True(Math.Abs(bf16[^1] - fp32[^1]) < 0.1, $"final loss bf16 {bf16[^1]:F4} vs fp32 {fp32[^1]:F4}");
    }
}

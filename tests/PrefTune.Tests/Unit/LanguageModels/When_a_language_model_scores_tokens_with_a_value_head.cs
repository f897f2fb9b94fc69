using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.LanguageModels;

/// <summary>
/// The language-model policy's per-token view for PPO (<see cref="LanguageModelFamily.ScoreTokens"/>): token log-probs
/// that are SequenceLogProbs' own, a value head read at the positions that predict each token, zero past each
/// response's end, trained by a value loss, held in checkpoints and left out of a Hugging Face export.
/// </summary>
public sealed class When_a_language_model_scores_tokens_with_a_value_head : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("preftune-value-head-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly LanguageModelSpec Spec = new() { Path = Fixtures.StoriesHf };

    // Prompts of different lengths (left padding) and responses of different lengths (right padding), the last one empty-free.
    private static readonly Rollout[] Rollouts =
    [
        Rollout(0, [1, 403, 407, 261, 378], [40, 8, 71, 9, 1]),
        Rollout(1, [1, 17], [12, 50, 3]),
        Rollout(2, [1, 33, 90], [7]),
    ];

    private static Rollout Rollout(int i, int[] prompt, int[] response) => new()
    {
        SampleId = new Guid(i + 1, 0, 0, new byte[8]),
        PromptId = $"p{i}",
        Group = i,
        PromptTokens = prompt,
        ResponseTokens = response,
        TokenLogProbs = response.Select(_ => -1f).ToArray(),
        PolicyVersion = 0,
    };

    private static (LanguageModelFamily Family, LanguageModelPolicy Policy) Fresh()
    {
        TorchRuntime.UseThreads(1);
        var family = new LanguageModelFamily(Spec);
        return (family, (LanguageModelPolicy)family.CreatePolicy(seed: 0));
    }

    private static float[,] Rows(Tensor t) => (float[,])t.detach().cpu().data<float>().ToNDArray();

    /// <summary>Moves every value-head parameter by seeded noise, as training would.</summary>
    private static void PerturbValueHead(LanguageModelPolicy policy)
    {
        using var noGrad = no_grad();
        using var generator = new Generator(11);
        foreach (var (name, parameter) in policy.named_parameters())
            if (name.StartsWith("value_head.", StringComparison.Ordinal))
                using (var noise = randn(parameter.shape, generator: generator))
                    parameter.add_(noise * 0.1f);
    }

    [Fact]
    public void Its_log_probs_are_sequence_log_probs_token_scores_and_sum_to_the_sequence_log_probs()
    {
        var (family, policy) = Fresh();
        using var _ = policy;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        var scores = family.ScoreTokens(policy, Rollouts);                                             // [N, R] each
        var batch = SequenceLogProbs.Pack(policy.Model, Rollouts.Select(r => new TokenSequence(r.PromptTokens, r.ResponseTokens)).ToList());
        var expected = SequenceLogProbs.Score(policy.Model, batch, tokens: true);                      // (N, R) tokens, (N) sum

        Assert.Equal([3L, 5L], scores.LogProbs.shape);
        Assert.True((scores.LogProbs - expected.Tokens!).abs().max().item<float>() <= 1e-5f);
        var sums = scores.LogProbs.sum(1).data<float>().ToArray();                                    // (N)
        var sequence = family.SequenceLogProbs(policy, Rollouts).data<float>().ToArray();             // (N)
        for (var i = 0; i < Rollouts.Length; i++)
            Assert.Equal(sequence[i], sums[i], 1e-4f);
        var logProbs = Rows(scores.LogProbs);
        for (var i = 0; i < Rollouts.Length; i++)
            for (var t = 0; t < 5; t++)
                Assert.True(t < Rollouts[i].ResponseTokens.Length ? logProbs[i, t] < 0 : logProbs[i, t] == 0, $"row {i}, token {t}: {logProbs[i, t]}");
    }

    [Fact]
    public void A_fresh_value_head_is_zero_and_leaves_the_model_as_loaded()
    {
        var (family, policy) = Fresh();
        using var _ = policy;
        using var baseModel = Fixtures.Load(Fixtures.StoriesHf);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        Assert.True(policy.ValueHeadIsZero);
        Assert.Equal(0f, family.ScoreTokens(policy, Rollouts).Values.abs().max().item<float>());
        int[] ids = [1, 403, 407, 261, 378, 40, 8];
        Assert.Equal(0, Fixtures.MaxDiff(Fixtures.Logits(baseModel, ids), Fixtures.Logits(policy.Model, ids)));
    }

    [Fact]
    public void Values_are_read_where_each_token_is_predicted_and_are_zero_past_the_end()
    {
        var (family, policy) = Fresh();
        using var _ = policy;
        PerturbValueHead(policy);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        var values = Rows(family.ScoreTokens(policy, Rollouts).Values);                                // [N, R]
        for (var i = 0; i < Rollouts.Length; i++)
        {
            // The row alone, unpadded: the hidden state at prompt length + t - 1 predicts response token t.
            var (prompt, response) = (Rollouts[i].PromptTokens, Rollouts[i].ResponseTokens);
            var ids = tensor(prompt.Concat(response).Select(x => (long)x).ToArray(), [1, prompt.Length + response.Length]);
            var (_, hidden) = policy.Model.ForwardWithHidden(ids);                                     // (1, T, C)
            var alone = policy.Value(hidden).data<float>().ToArray();                                  // (1, T) flat
            for (var t = 0; t < 5; t++)
                if (t < response.Length)
                    Assert.Equal(alone[prompt.Length + t - 1], values[i, t], 1e-4f);
                else
                    Assert.Equal(0f, values[i, t]);
        }
        Assert.Contains(Enumerable.Range(0, 5).Select(t => values[0, t]), v => v != 0);
    }

    [Fact]
    public void A_value_loss_gives_the_zero_head_a_gradient()
    {
        var (family, policy) = Fresh();
        using var _ = policy;
        using var scope = NewDisposeScope();

        var scores = family.ScoreTokens(policy, Rollouts);
        var target = ones_like(scores.Values);                                                         // [N, R]
        var mask = scores.LogProbs.ne(0).to_type(ScalarType.Float32);                                  // [N, R]: response tokens
        ((scores.Values - target).pow(2) * mask).sum().backward();

        var grads = policy.named_parameters().Where(p => p.name.StartsWith("value_head.", StringComparison.Ordinal))
            .Select(p => p.parameter.grad!.abs().sum().item<float>()).ToList();
        Assert.Equal(2, grads.Count);
        Assert.All(grads, g => Assert.True(g > 0));
    }

    [Fact]
    public void Its_weights_round_trip_the_value_head()
    {
        var (family, policy) = Fresh();
        using var _ = policy;
        PerturbValueHead(policy);
        var weights = policy.SaveWeights();
        var (_, restored) = Fresh();
        using var __ = restored;

        restored.LoadWeights(weights);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Assert.False(restored.ValueHeadIsZero);
        Assert.Equal(weights, restored.SaveWeights());
        Assert.Equal(0f, (family.ScoreTokens(policy, Rollouts).Values - family.ScoreTokens(restored, Rollouts).Values).abs().max().item<float>());
    }

    [Fact]
    public void A_zero_head_is_left_out_of_the_bytes_so_other_methods_checkpoints_keep_their_hashes()
    {
        var (_, policy) = Fresh();
        using var _ = policy;
        var withoutHead = policy.SaveWeights();
        // What the policy wrote before it had a value head: the same model registered as "lm" and nothing else.
        using var before = new PolicyWithoutValueHead(Fixtures.Load(Fixtures.StoriesHf));
        Assert.Equal(before.SaveWeights(), withoutHead);

        // Loading such bytes into a policy whose head was trained sets the head back to zero: absent means zero.
        var (_, trained) = Fresh();
        using var __ = trained;
        PerturbValueHead(trained);
        trained.LoadWeights(withoutHead);
        Assert.True(trained.ValueHeadIsZero);
        Assert.Equal(withoutHead, trained.SaveWeights());
    }

    /// <summary>LanguageModelPolicy as it was before the value head: the model under "lm" alone.</summary>
    private sealed class PolicyWithoutValueHead : PolicyModel
    {
        public PolicyWithoutValueHead(LanguageModel model) : base("lm_policy") => register_module("lm", model);
    }

    [Fact]
    public void Weights_of_another_model_are_refused()
    {
        TorchRuntime.UseThreads(1);
        using var other = new LanguageModelPolicy(Fixtures.Load(Fixtures.Tiny("tiny-llama")));
        var (_, policy) = Fresh();
        using var _ = policy;

        Assert.ThrowsAny<Exception>(() => policy.LoadWeights(other.SaveWeights()));
    }

    [Fact]
    public void An_export_of_a_policy_with_a_trained_value_head_loads_back_to_identical_logits()
    {
        var (_, policy) = Fresh();
        using var _ = policy;
        PerturbValueHead(policy);
        var output = Path.Combine(_root, "export");

        HfExport.Write(Spec, policy.SaveWeights(), output, new ExportSource(Guid.NewGuid(), 3));

        using var loaded = Fixtures.Load(output);
        int[] ids = [1, 403, 407, 261, 378, 40, 8, 71];
        Assert.True(Fixtures.MaxDiff(Fixtures.Logits(policy.Model, ids), Fixtures.Logits(loaded, ids)) <= 1e-6);
        Assert.DoesNotContain(loaded.state_dict().Keys, k => k.Contains("value", StringComparison.Ordinal));
    }
}

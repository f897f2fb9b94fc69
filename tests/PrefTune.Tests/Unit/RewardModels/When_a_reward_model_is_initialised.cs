using PrefTune.Tests.Unit.LanguageModels;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Rewards;
using Xunit;
using static TorchSharp.torch;

namespace PrefTune.Tests.Unit.RewardModels;

public class When_a_reward_model_is_initialised
{
    private static readonly long[] Ids = [1, 403, 407, 261, 378, 29, 94, 301];   // "Once upon a time" and more

    [Fact]
    public void It_is_the_sequence_classification_form_of_the_architecture()
    {
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var rm = RewardModelTraining.FromCausalLm(causal, seed: 1);
        Assert.Equal("LlamaForSequenceClassification", rm.Config.Architecture);
        Assert.Equal(ModelHead.SequenceClassification, rm.Config.Head);
        Assert.Equal(1, rm.Config.NumLabels);
        Assert.Equal(2, rm.Config.PadTokenId);   // stories260K names no pad: its EOS, which PrefTune never appends
        Assert.Equal(["score.weight"], rm.state_dict().Keys.Except(causal.state_dict().Keys));
        // what config.json will say, read back as the Scorer reads it
        var json = LanguageModelConfig.FromHfConfig(rm.Config.HfConfig, "config.json");
        Assert.Equal((ModelHead.SequenceClassification, 1, 2), (json.Head, json.NumLabels, json.PadTokenId));
    }

    /// <summary>
    /// stories260K ties its head to the token embedding, so its logit for token v is h . E[v] with h the backbone's last
    /// hidden state. A classifier whose score row is E[v] then scores, at every position, exactly the causal model's
    /// logit for v: the backbone's hidden states are the causal model's.
    /// </summary>
    [Fact]
    public void The_backbone_computes_the_causal_model_s_hidden_states()
    {
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var rm = RewardModelTraining.FromCausalLm(causal, seed: 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, weight) in causal.state_dict())
            Assert.True(weight.eq(rm.state_dict()[name]).all().item<bool>(), name);
        const int v = 403;
        rm.state_dict()["score.weight"].copy_(causal.state_dict()["model.embed_tokens.weight"].narrow(0, v, 1));   // (1, C)
        var input = tensor(Ids, [1, Ids.Length]);
        var logits = causal.forward(input)[0, .., v];          // (T)
        var scores = rm.forward(input)[0, .., 0];              // (T)
        Assert.True((logits - scores).abs().max().item<float>() < 1e-5f);
        // Scores reads the last token (a tolerance, not Assert.Equal's decimal places: -3.7849350 and -3.7849355 round apart)
        Assert.InRange(rm.Scores(input)[0, 0].item<float>() - logits[^1].item<float>(), -1e-5f, 1e-5f);
    }

    [Fact]
    public void The_score_head_is_drawn_from_the_seed_alone()
    {
        using var causal = Fixtures.Load(Fixtures.StoriesHf);
        using var a = RewardModelTraining.FromCausalLm(causal, seed: 7);
        manual_seed(12345);   // the global generator does not matter
        using var b = RewardModelTraining.FromCausalLm(causal, seed: 7);
        using var c = RewardModelTraining.FromCausalLm(causal, seed: 8);
        using var scope = NewDisposeScope();
        var (wa, wb, wc) = (a.state_dict()["score.weight"], b.state_dict()["score.weight"], c.state_dict()["score.weight"]);
        Assert.True(wa.eq(wb).all().item<bool>());
        Assert.False(wa.eq(wc).all().item<bool>());
        // N(0, 0.02^2) over 64 entries: the sample std lies well within [0.01, 0.03]
        Assert.InRange(wa.std().item<float>(), 0.01f, 0.03f);
    }

    [Fact]
    public void A_classifier_is_not_initialised_again()
    {
        using var rm = Fixtures.Load(Fixtures.Tiny("tiny-gpt-neox-rm"));
        Assert.Throws<ArgumentException>(() => RewardModelTraining.FromCausalLm(rm, seed: 0));
    }
}

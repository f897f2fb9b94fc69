using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PrefTune.Messages;
using PrefTune.ServiceDefaults;

namespace PrefTune.Sampler;

/// <summary>
/// Measures a policy in one hop: samples, asks the Scorer directly, answers with aggregates. An evaluation is two
/// stages' work, and on a busy machine it can outlast one attempt of the Orchestrator's request: it is therefore
/// kept by its batch id while it runs and shortly after, so the Orchestrator's next attempt (the same request, asked
/// again) is answered by the same work instead of starting it over and timing out again. A Scorer that does not
/// answer fails the evaluation quietly (no answer goes back; the next attempt starts afresh); a Scorer that fails
/// answers with its fault, and the run fails naming it.
/// </summary>
public sealed class EvaluatePolicyConsumer(EvaluationsUnderWay evaluations, PrefTuneOptions options, ILogger<EvaluatePolicyConsumer> log)
    : IConsumer<EvaluatePolicy>
{
    public async Task Consume(ConsumeContext<EvaluatePolicy> context)
    {
        var work = evaluations.For(context.Message);
        // Wait as long as the Orchestrator waits for this answer (its request's time to live), or one attempt.
        var waitFor = context.ExpirationTime is { } expires ? expires - DateTime.UtcNow : TimeSpan.FromSeconds(options.StageAttemptSeconds);
        EvaluationSummarized summary;
        try
        {
            summary = await work.WaitAsync(waitFor > TimeSpan.Zero ? waitFor : TimeSpan.Zero, context.CancellationToken);
        }
        catch (TimeoutException)
        {
            return;   // still running: the next attempt waits for the same work
        }
        catch (RequestTimeoutException)
        {
            log.LogWarning("evaluation of run {RunId}: the scorer did not answer; the orchestrator will ask again", context.Message.Sampling.RunId);
            return;
        }
        catch (RequestFaultException e)
        {
            var cause = e.Fault?.Exceptions.FirstOrDefault();
            throw new InvalidOperationException($"the scorer failed on the evaluation's ScoreRollouts: {cause?.ExceptionType.Split('.').Last()}: {cause?.Message ?? e.Message}", e);
        }
        await context.RespondAsync(summary);
    }
}

/// <summary>The Sampler's evaluations under way or just finished, by batch id (a retried request carries the same one).</summary>
public sealed class EvaluationsUnderWay(PolicyCache policies, IBus bus, PrefTuneOptions options, IHostApplicationLifetime lifetime)
{
    private const int Kept = 16;
    private readonly Lock _gate = new();
    private readonly LinkedList<(Guid BatchId, Task<EvaluationSummarized> Work)> _recent = new();
    private IRequestClient<ScoreRollouts>? _scorer;

    /// <summary>The evaluation of this batch: the one under way or just finished, or a new one. A failed one is not reused.</summary>
    public Task<EvaluationSummarized> For(EvaluatePolicy request)
    {
        var batchId = request.Sampling.BatchId;
        lock (_gate)
        {
            foreach (var (id, known) in _recent)
                if (id == batchId && !known.IsFaulted && !known.IsCanceled) return known;
            _scorer ??= bus.CreateRequestClient<ScoreRollouts>();
            var scorer = _scorer;
            var attempt = RequestTimeout.After(ms: (int)(options.StageAttemptSeconds * 1000));
            var work = Task.Run(() => PolicyEvaluation.EvaluateAsync(request,
                (sampling, ct) => SampleRolloutsConsumer.SampleAsync(policies, sampling, ct),
                async (scoring, ct) => (await scorer.GetResponse<RolloutsScored>(scoring, ct, attempt)).Message,
                lifetime.ApplicationStopping));
            _recent.AddFirst((batchId, work));
            while (_recent.Count > Kept) _recent.RemoveLast();
            return work;
        }
    }
}

/// <summary>Sampling waits on the process's libtorch gate, not here: an attempt may wait for an evaluation under way
/// while another request is taken.</summary>
public sealed class EvaluatePolicyConsumerDefinition : ConsumerDefinition<EvaluatePolicyConsumer>
{
    public EvaluatePolicyConsumerDefinition() => ConcurrentMessageLimit = 4;
}

/// <summary>One evaluation, whoever samples and scores: the Sampler's consumer (Scorer over the bus) or the bench's objects in process.</summary>
public static class PolicyEvaluation
{
    public static async Task<EvaluationSummarized> EvaluateAsync(EvaluatePolicy request,
        Func<SampleRollouts, CancellationToken, Task<RolloutsGenerated>> sample,
        Func<ScoreRollouts, CancellationToken, Task<RolloutsScored>> score, CancellationToken ct)
    {
        var sampling = request.Sampling;
        async Task<(RolloutsGenerated, RolloutsScored)> Measure(SampleRollouts batch, RewardModelSpec? rewardModel)
        {
            var generated = await sample(batch, ct);
            var scored = await score(ScoreRollouts.For(generated, batch.Task, rewardModel, batch.TorchThreads), ct);
            return scored.Scores.Count == generated.Rollouts.Count ? (generated, scored)
                : throw new InvalidOperationException($"evaluation batch {batch.BatchId}: {scored.Scores.Count} scores for {generated.Rollouts.Count} rollouts");
        }
        var (policyGenerated, policyScored) = await Measure(sampling, request.RewardModel);
        var summary = Summarize(policyGenerated, policyScored, request.RewardModel is not null);
        if (request.ReferenceSampling is not { } reference) return summary;
        // the reference is measured on the gold reward alone: what the comparison reads
        var (referenceGenerated, referenceScored) = await Measure(reference, null);
        var metrics = new Dictionary<string, double>(summary.Metrics);
        metrics.WithComparison(Golds(policyGenerated, policyScored), Golds(referenceGenerated, referenceScored));
        return summary with { Metrics = metrics };
    }

    /// <summary>Each rollout's prompt id and gold reward, in order.</summary>
    private static List<(string PromptId, double Gold)> Golds(RolloutsGenerated generated, RolloutsScored scored)
    {
        var gold = scored.Scores.ToDictionary(s => s.SampleId, s => s.GoldReward);
        return generated.Rollouts.Select(r => (r.PromptId, gold[r.SampleId])).ToList();
    }

    /// <summary>
    /// The policy against the reference on the same prompts (PAPER.md, Problem 3's measure), by the gold reward:
    /// eval/win_rate = the mean over every pair of a policy response y and a reference response y' to the same prompt of
    /// 1[g(y) &gt; g(y')] + 1/2 1[g(y) = g(y')] (0.5 when the two are the same distribution; counted in half-points, so
    /// exactly 0.5 for the same responses); eval/gold_reward_increase = mean g(y) - mean g(y'); eval/reference_gold_reward
    /// = mean g(y').
    /// </summary>
    /// <exception cref="ArgumentException">A policy response to a prompt the reference did not answer.</exception>
    public static Dictionary<string, double> WithComparison(this Dictionary<string, double> metrics,
        IReadOnlyList<(string PromptId, double Gold)> policy, IReadOnlyList<(string PromptId, double Gold)> reference)
    {
        var byPrompt = reference.GroupBy(r => r.PromptId).ToDictionary(g => g.Key, g => g.Select(r => r.Gold).ToArray());
        long halfPoints = 0, pairs = 0;
        foreach (var (prompt, gold) in policy)
        {
            var others = byPrompt.TryGetValue(prompt, out var found) ? found : throw new ArgumentException($"the reference has no response to prompt {prompt}");
            halfPoints += others.Sum(g => gold > g ? 2 : gold == g ? 1 : 0);
            pairs += others.Length;
        }
        var referenceMean = reference.Average(r => r.Gold);
        metrics[ComparisonMetrics.WinRate] = halfPoints / (2.0 * pairs);
        metrics[ComparisonMetrics.GoldRewardIncrease] = policy.Average(p => p.Gold) - referenceMean;
        metrics[ComparisonMetrics.ReferenceGoldReward] = referenceMean;
        return metrics;
    }

    /// <summary>The aggregates of one evaluation batch, in the order and arithmetic the recorded numbers have always had.</summary>
    public static EvaluationSummarized Summarize(RolloutsGenerated generated, RolloutsScored scored, bool hasRewardModel)
    {
        var rollouts = generated.Rollouts;
        var gold = scored.Scores.Select(s => s.GoldReward).ToArray();
        var mean = gold.Average();
        // Monte-Carlo estimates over y ~ pi (token log-probs are at temperature 1):
        // entropy H(pi) = -E[log pi(y)], KL(pi || pi_ref) = E[log pi(y) - log pi_ref(y)].
        var logProbs = rollouts.Select(r => r.TokenLogProbs.Sum(lp => (double)lp)).ToArray();
        var entropy = -logProbs.Average();
        var kl = rollouts.Select((r, i) => logProbs[i] - (r.ReferenceLogProb ?? logProbs[i])).Average();
        var metrics = new Dictionary<string, double>
        {
            ["eval/gold_reward"] = mean,
            ["eval/objective/entropy"] = entropy,
            ["eval/objective/kl"] = kl,
        };
        if (hasRewardModel)   // what the policy is trained to raise, beside the gold reward it is measured on
            metrics["eval/proxy_reward"] = scored.Scores.Average(s => s.Reward);
        if (rollouts.Any(r => r.Finish is not null))
            metrics.WithCompletions(rollouts);
        return new EvaluationSummarized
        {
            RunId = generated.RunId, BatchId = generated.BatchId, PolicyVersion = generated.PolicyVersion,
            Samples = gold.Length, RewardQueries = scored.RewardQueries,
            MeanGoldReward = mean,
            GoldRewardStd = Math.Sqrt(gold.Sum(g => (g - mean) * (g - mean)) / gold.Length),
            Entropy = entropy,
            Metrics = metrics,
        };
    }

    /// <summary>
    /// TRL's completion statistics of generated text (its names, eval/ prefix): mean length in tokens (the stop token not
    /// counted), the share truncated at max_new_tokens, and the mean length of those that stopped on their own.
    /// </summary>
    public static Dictionary<string, double> WithCompletions(this Dictionary<string, double> metrics, IReadOnlyList<Rollout> rollouts)
    {
        metrics["eval/completions/mean_length"] = rollouts.Average(r => (double)r.ContentLength());
        metrics["eval/completions/clipped_ratio"] = rollouts.Count(r => r.Finish == FinishReason.Length) / (double)rollouts.Count;
        var terminated = rollouts.Where(r => r.Finish == FinishReason.Stop).ToList();
        if (terminated.Count > 0) metrics["eval/completions/mean_terminated_length"] = terminated.Average(r => (double)r.ContentLength());
        return metrics;
    }
}

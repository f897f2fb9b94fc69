using static TorchSharp.torch;

namespace PrefTune.Training.Methods;

/// <summary>
/// All ordered pairs (y_w, y_l) within a prompt group whose rewards differ by more than a threshold:
/// r_w - r_l &gt; threshold (PAPER.md, on-policy DPO: "pairs kept only when the reward gap exceeds a
/// threshold"). Ties never form pairs. C responses with distinct rewards give C(C-1)/2 pairs (45 for C = 10).
/// Index tensors are [P] int64 in (group, winner, loser) lexicographic order, living in the caller's dispose scope.
/// </summary>
public sealed record PreferencePairs(Tensor Group, Tensor Winner, Tensor Loser, int Count, int ResponsesPerGroup)
{
    /// <summary>The rule's name in <see cref="PairsUsed.Rule"/>: every ordered pair of a group with a reward gap above the threshold.</summary>
    public const string Rule = "ranked-pairs";

    /// <param name="rewards">[G, C] rewards.</param>
    /// <param name="threshold">Minimum reward gap, at least 0.</param>
    public static PreferencePairs Build(Tensor rewards, double threshold = 0)
    {
        if (rewards.dim() != 2) throw new ArgumentException($"rewards must be [G, C], got [{string.Join(", ", rewards.shape)}]", nameof(rewards));
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "threshold must be at least 0 (ties never form pairs)");
        using var scope = NewDisposeScope();
        var r = rewards.detach();
        var gap = r.unsqueeze(2) - r.unsqueeze(1);   // [G, C, C]: gap[g, w, l] = r_w - r_l
        var index = (gap > threshold).nonzero();      // [P, 3]: (g, w, l)
        return new PreferencePairs(
            index.select(1, 0).MoveToOuterDisposeScope(),
            index.select(1, 1).MoveToOuterDisposeScope(),
            index.select(1, 2).MoveToOuterDisposeScope(),
            (int)index.shape[0],
            (int)rewards.shape[1]);
    }

    /// <summary>The pairs as (group, winner, loser) indices for the record, built with <paramref name="threshold"/>.</summary>
    public PairsUsed Used(double threshold)
    {
        if (Count == 0) return new PairsUsed(Rule, threshold, ResponsesPerGroup, []);
        var group = Group.data<long>().ToArray();
        var winner = Winner.data<long>().ToArray();
        var loser = Loser.data<long>().ToArray();
        var indices = Enumerable.Range(0, Count).Select(i => ((int)group[i], (int)winner[i], (int)loser[i])).ToList();
        return new PairsUsed(Rule, threshold, ResponsesPerGroup, indices);
    }

    /// <summary>values[g, w] for every pair: [G, C] -> [P].</summary>
    public Tensor Chosen(Tensor values) => values.reshape(-1).index_select(0, Group * ResponsesPerGroup + Winner);

    /// <summary>values[g, l] for every pair: [G, C] -> [P].</summary>
    public Tensor Rejected(Tensor values) => values.reshape(-1).index_select(0, Group * ResponsesPerGroup + Loser);

    /// <summary>The loss when there are no pairs: exactly 0, still connected to the graph (zero gradient), never NaN.</summary>
    public static Tensor ZeroLoss(GroupBatch batch) => batch.LogProbs.sum() * 0;

    /// <summary>DPO's h per pair: (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)), [P], with the policy's gradient.</summary>
    public Tensor Margin(GroupBatch batch) =>
        (Chosen(batch.LogProbs) - Chosen(batch.RefLogProbs)) - (Rejected(batch.LogProbs) - Rejected(batch.RefLogProbs));

    /// <summary>
    /// TRL's pair diagnostics, the same for every pair method: implicit rewards beta * log(pi/pi_ref) of the
    /// chosen and rejected responses, their margin and accuracy, the log-probs, and the pair count. No gradient.
    /// </summary>
    public Dictionary<string, Tensor> Diagnostics(GroupBatch batch, double beta)
    {
        var chosenLogps = Chosen(batch.LogProbs).detach();                              // [P]
        var rejectedLogps = Rejected(batch.LogProbs).detach();                          // [P]
        var chosenRewards = beta * (chosenLogps - Chosen(batch.RefLogProbs));           // [P]
        var rejectedRewards = beta * (rejectedLogps - Rejected(batch.RefLogProbs));     // [P]
        return new Dictionary<string, Tensor>
        {
            ["rewards/chosen"] = chosenRewards.mean(),
            ["rewards/rejected"] = rejectedRewards.mean(),
            ["rewards/margins"] = (chosenRewards - rejectedRewards).mean(),
            ["rewards/accuracies"] = (chosenRewards > rejectedRewards).to_type(ScalarType.Float32).mean(),
            ["logps/chosen"] = chosenLogps.mean(),
            ["logps/rejected"] = rejectedLogps.mean(),
            ["pairs"] = tensor((float)Count),
        };
    }
}

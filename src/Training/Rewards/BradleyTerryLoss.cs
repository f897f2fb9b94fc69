using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.Rewards;

/// <summary>
/// The reward model's loss (Bradley-Terry; TRL's RewardTrainer.compute_loss):
/// mean over pairs of -log sigmoid(r_w - r_l - h), plus c * mean((r_w + r_l)^2) when centering is on.
/// h is a per-pair margin (TRL reads a "margin" column; PrefTune fills it from score_diff, scaled), so a pair the
/// gold reward separates widely must be separated widely. The centering term (Eisenstein et al. 2023, TRL's
/// center_rewards_coefficient, 0.01 in its docs) pins the rewards near 0, since the loss alone sees only differences.
/// </summary>
public static class BradleyTerryLoss
{
    /// <param name="chosen">(B) r_w.</param>
    /// <param name="rejected">(B) r_l.</param>
    /// <param name="margin">(B) h, or null for none.</param>
    /// <param name="centerCoefficient">c, 0 for none.</param>
    /// <returns>() the scalar loss.</returns>
    public static Tensor Compute(Tensor chosen, Tensor rejected, Tensor? margin = null, double centerCoefficient = 0)
    {
        using var scope = NewDisposeScope();
        var difference = chosen - rejected;                                    // (B)
        if (margin is not null) difference = difference - margin;
        var loss = -F.logsigmoid(difference).mean();                          // ()
        if (centerCoefficient != 0)
            loss = loss + centerCoefficient * (chosen + rejected).pow(2).mean();
        return loss.MoveToOuterDisposeScope();
    }
}

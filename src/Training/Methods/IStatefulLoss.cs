namespace PrefTune.Training.Methods;

/// <summary>
/// A loss that carries state from batch to batch (a running baseline, an adaptive KL coefficient). The state is
/// saved with the optimizer's in every checkpoint, so a Learner restored mid-run continues exactly where the
/// lost one stopped.
/// </summary>
public interface IStatefulLoss
{
    IReadOnlyDictionary<string, double> SaveState();
    void LoadState(IReadOnlyDictionary<string, double> state);
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefTune.Training.Policies;

/// <summary>
/// The bandit's 1-D categorical policy (PAPER.md, Problem 1, policy (a)): prompt k selects a fixed
/// context vector, an MLP maps it to logits over the A actions.
/// context(ContextSize) -> Hidden (ReLU) -> Hidden (ReLU) -> A logits.
/// </summary>
/// <remarks>
/// The prompts' context vectors are a buffer of the module, so they travel with every checkpoint and a
/// policy built from any seed becomes the run's policy once its weights are loaded.
/// </remarks>
public sealed class CategoricalPolicy : PolicyModel
{
    // Submodules and buffers in call order; field names are the state-dict keys.
    private readonly Tensor contexts;   // [P, ContextSize] buffer: row k is prompt k's context vector
    private readonly Linear fc1;        // ContextSize -> Hidden
    private readonly ReLU relu1;
    private readonly Linear fc2;        // Hidden -> Hidden
    private readonly ReLU relu2;
    private readonly Linear head;       // Hidden -> A

    /// <param name="contexts">[P, ContextSize] prompt context vectors; the policy takes ownership.</param>
    public CategoricalPolicy(Tensor contexts, int hidden, int actions) : base(nameof(CategoricalPolicy))
    {
        if (contexts.dim() != 2 || contexts.requires_grad)
            throw new ArgumentException($"contexts must be a [P, ContextSize] tensor without grad, got [{string.Join(", ", contexts.shape)}]", nameof(contexts));
        this.contexts = contexts;
        fc1 = nn.Linear(contexts.shape[1], hidden);
        relu1 = nn.ReLU();
        fc2 = nn.Linear(hidden, hidden);
        relu2 = nn.ReLU();
        head = nn.Linear(hidden, actions);
        RegisterComponents();
    }

    /// <summary>Numbers in a policy of these sizes, without building it: the context buffer and the three layers' weights and biases.</summary>
    public static double ParameterCount(int prompts, int contextSize, int hidden, int actions) =>
        (double)prompts * contextSize + ((double)contextSize + 1) * hidden + ((double)hidden + 1) * hidden + ((double)hidden + 1) * actions;

    /// <summary>Number of prompts P the policy knows context vectors for.</summary>
    public int Prompts => (int)contexts.shape[0];

    /// <summary>Number of actions A.</summary>
    public int Actions => (int)head.out_features;

    /// <summary>Logits over actions for each prompt index. prompts: [N] int64 -> [N, A].</summary>
    public Tensor forward(Tensor prompts)
    {
        using var scope = NewDisposeScope();
        var x = contexts.index_select(0, prompts);   // [N, ContextSize]
        x = relu1.forward(fc1.forward(x));           // [N, Hidden]
        x = relu2.forward(fc2.forward(x));           // [N, Hidden]
        return head.forward(x).MoveToOuterDisposeScope();   // [N, A]
    }
}

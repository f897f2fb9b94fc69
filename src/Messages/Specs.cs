namespace PrefTune.Messages;

/// <summary>Where a run's training data comes from: Algorithm 1, step 2.</summary>
public enum DataSource
{
    /// <summary>y ~ pi_theta(.|x): fresh responses from the current policy every iteration.</summary>
    Online,
    /// <summary>Responses from a fixed preference dataset D_pref, sampled once from the reference policy.</summary>
    Offline,
}

/// <summary>Everything that defines one run; recorded whole in <see cref="RunStarted"/> so a run can be replayed.</summary>
public sealed record RunSpec
{
    /// <summary>Name of the experiment file the run came from.</summary>
    public required string Experiment { get; init; }
    /// <summary>Display label of the method in this experiment, e.g. "dpo (online)".</summary>
    public required string Label { get; init; }
    public required TaskSpec Task { get; init; }
    public required MethodSpec Method { get; init; }
    public required LoopSpec Loop { get; init; }
    /// <summary>Seeds network init, prompts, sampling and minibatch order.</summary>
    public int Seed { get; init; }
    /// <summary>libtorch intra-op threads in every service; results are bit-identical only at equal thread counts.</summary>
    public int TorchThreads { get; init; } = 1;
    /// <summary>AdamW with weight decay, clipping, a schedule and micro-batches; null is plain Adam at loop.learning_rate
    /// without clipping, as the bandit study trains.</summary>
    public OptimizerSettings? Optimizer { get; init; }
    /// <summary>The learned reward the method trains on; null trains on the task's gold reward (the bandit study does).</summary>
    public RewardModelSpec? RewardModel { get; init; }
}

/// <summary>A learned reward model r_phi that a run trains on in place of the gold reward, which is still measured beside it
/// (never trained on): a sequence-classification language model (HF's score head) read at the response's last token.</summary>
public sealed record RewardModelSpec
{
    /// <summary>A Hugging Face directory of a ...ForSequenceClassification model; a relative path is read from the
    /// experiment file's folder.</summary>
    public string Path { get; init; } = "";
    /// <summary>Its tokenizer.json (empty: the model directory's). When it is not the policy's tokenizer, the reward model
    /// reads the rollout's text, decoded with the policy's tokenizer and encoded with its own.</summary>
    public string Tokenizer { get; init; } = "";
    /// <summary>"cpu" or "cuda".</summary>
    public string Device { get; init; } = "cpu";
}

/// <summary>The problem: prompts, the policy that answers them and the gold reward. One nullable block per task kind.</summary>
public sealed record TaskSpec
{
    /// <summary>"bandit", "length" or "preference"; each kind reads its own block.</summary>
    public required string Kind { get; init; }
    public BanditSpec? Bandit { get; init; }
    public LengthSpec? Length { get; init; }
    public PreferenceSpec? Preference { get; init; }
    /// <summary>The causal language model that answers the prompts, for tasks whose policy is one ("length", "preference").</summary>
    public LanguageModelSpec? Model { get; init; }
}

/// <summary>
/// A user's own preference data (PAPER.md, Problem 3, at small scale): prompts and pairs from a dataset file of any format
/// PrefTune reads, a gold reward model that measures (never trains), and held-out prompts on which each evaluation compares
/// the policy's responses with the reference's (win rate, gold reward increase).
/// </summary>
public sealed record PreferenceSpec
{
    /// <summary>The dataset: preference pairs (TRL standard or conversational, AlpacaFarm, UltraFeedback, Anthropic HH, the
    /// study's relabeled sets) that offline methods train on, or prompts only (on-policy methods); its distinct prompts are
    /// the prompt pool. JSONL or Parquet; a relative path is read from the experiment file's folder.</summary>
    public string Dataset { get; init; } = "";
    /// <summary>The share of the dataset's distinct prompts kept out of training and used for evaluation, chosen by the
    /// SHA-256 of their text (the same prompts for every seed and method, whatever the file's order); their rows are not
    /// in offline D_pref.</summary>
    public double HeldOut { get; init; } = 0.25;
    /// <summary>The gold reward: a sequence-classification reward model (as train-rm writes), read by the Scorer.</summary>
    public RewardModelSpec? GoldRewardModel { get; init; }
}

/// <summary>A task whose gold reward depends only on the response length in tokens (PAPER.md, Problem 2), the stop
/// token not counted.</summary>
public sealed record LengthSpec
{
    /// <summary>"min": gold reward = -length, shorter is better. "mode": -|length - mode_length|, closer to the mode of the
    /// preference data is better. "skew": min's reward, but a preference dataset built for it has its completions cut to
    /// at most skew_truncate tokens, so the data covers the reference poorly (PAPER.md, Problem 2).</summary>
    public string Goal { get; init; } = "min";
    /// <summary>A JSONL file, one object with a "prompt" string per line; a relative path is read from the experiment
    /// file's folder. Each prompt is encoded with the model's tokenizer (BOS included where it adds one).</summary>
    public string Prompts { get; init; } = "";
    /// <summary>Goal "mode" only: the length in tokens the gold reward peaks at. A run needs it; `preftune preference-data`
    /// without it takes the mode of the sampled responses' lengths and records it.</summary>
    public int? ModeLength { get; init; }
    /// <summary>Goal "skew" only: a preference dataset's completions are cut to at most this many tokens (the gold reward
    /// is min's either way).</summary>
    public int? SkewTruncate { get; init; }
    /// <summary>A preference-pairs file (`preftune preference-data`'s pairs.jsonl or .parquet: prompt, y_w, y_l, y_w_score,
    /// y_l_score, score_diff, y_ref) that offline methods train on as D_pref instead of sampling it from the reference; a
    /// relative path is read from the experiment file's folder. Each row is one prompt group of 2 responses (y_w, y_l)
    /// rewarded with y_w_score and y_l_score, so offline methods need C = 2, and dataset_prompts and dataset_responses are
    /// set from the file (its rows, 2). Empty: offline D_pref is sampled. Online methods do not read it.</summary>
    public string Dataset { get; init; } = "";
}

/// <summary>The number format a language model's learner computes in; its weights and optimizer state stay float32 either way.</summary>
public enum Precision
{
    /// <summary>float32 throughout.</summary>
    Fp32,
    /// <summary>bfloat16 matmuls (Linear layers and the LM head, with their inputs), float32 elsewhere: the norms, the
    /// residual stream, the attention softmax, the log-softmax over the vocabulary and the loss (MixedPrecision.cs).</summary>
    Bf16,
}

/// <summary>A causal language model as a policy: where its files are and how it samples.</summary>
public sealed record LanguageModelSpec
{
    /// <summary>A Hugging Face model directory (config.json, model.safetensors) or a llama2.c checkpoint (.bin); a
    /// relative path is read from the experiment file's folder. Every machine running a service needs it at this path.</summary>
    public string Path { get; init; } = "";
    /// <summary>tokenizer.json or a llama2.c tokenizer .bin; empty: the model directory's tokenizer.json.</summary>
    public string Tokenizer { get; init; } = "";
    /// <summary>Most tokens a response may have; one that reaches it without a stop token is truncated.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Sample among the K most likely tokens only; 0 keeps every token.</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: the smallest set of tokens whose probability reaches P; 1 keeps every token.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Token ids that end a response, e.g. "1" or "0,2"; "none" disables; empty: the model's own (eos_token_id,
    /// or BOS = 1 for llama2.c).</summary>
    public string StopIds { get; init; } = "";
    /// <summary>Sequences generated together at most.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>"cpu", or "cuda" where the CUDA build exists: the model and its tensors live there.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>What the learner scores and trains in: fp32, or bf16 (mixed precision, float32 master weights). Sampling
    /// (generation) is float32 either way. Left out of the recorded JSON when fp32, so the specs and hashes recorded before
    /// it existed are unchanged.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public Precision Precision { get; init; }
}

/// <summary>The didactic bandit of Tajwar et al. (PAPER.md, Problem 1).</summary>
public sealed record BanditSpec
{
    /// <summary>Number of actions (bins on [-1, 1]).</summary>
    public int Actions { get; init; } = 100;
    /// <summary>Centre c of the gold reward r(a) = exp(-((a - c) / w)^2).</summary>
    public double RewardCenter { get; init; } = 70;
    /// <summary>Width w of the gold reward.</summary>
    public double RewardWidth { get; init; } = 10;
    /// <summary>Location of the Cauchy behind pi_data = histogram of tanh(Cauchy(loc, scale)).</summary>
    public double DataLocation { get; init; } = -0.7;
    /// <summary>Scale of that Cauchy.</summary>
    public double DataScale { get; init; } = 0.4;
    /// <summary>Policy family: "categorical" (an MLP from a context vector to the action logits, one action per
    /// response) or "gpt" (a tiny GPT over the A actions as its vocabulary, <see cref="ResponseLength"/> actions per response).</summary>
    public string Policy { get; init; } = "categorical";
    /// <summary>Dimension of each prompt's context vector.</summary>
    public int ContextSize { get; init; } = 100;
    /// <summary>Hidden width of the policy MLP.</summary>
    public int Hidden { get; init; } = 64;
    /// <summary>Number of distinct prompts (random context vectors drawn from the run seed).</summary>
    public int Prompts { get; init; } = 8;
    /// <summary>"gpt" only: tokens per response (each an action; the gold reward is their mean r(a)). The block size is 1 + this.</summary>
    public int ResponseLength { get; init; } = 9;
    /// <summary>"gpt" only: transformer blocks.</summary>
    public int Layers { get; init; } = 3;
    /// <summary>"gpt" only: attention heads per block (must divide <see cref="Width"/>).</summary>
    public int Heads { get; init; } = 3;
    /// <summary>"gpt" only: embedding width d.</summary>
    public int Width { get; init; } = 48;
    /// <summary>Adam steps that fit the reference policy to pi_data.</summary>
    public int ReferenceSteps { get; init; } = 100;
    /// <summary>Learning rate of that fit.</summary>
    public double ReferenceLearningRate { get; init; } = 0.01;
}

/// <summary>The preference fine-tuning method: a registered loss plus where its data comes from.</summary>
public sealed record MethodSpec
{
    /// <summary>Registry name, e.g. "pref-ft", "best-of-n", "dpo", "reinforce".</summary>
    public required string Name { get; init; }
    public DataSource Data { get; init; } = DataSource.Online;
    /// <summary>Hyperparameters named as in the paper (beta, tau, threshold, ...); unset ones take the method's defaults.</summary>
    public IReadOnlyDictionary<string, double> Parameters { get; init; } = new Dictionary<string, double>();
}

/// <summary>Algorithm 1's knobs. B samples per iteration in B/C prompts of C responses; T passes of minibatches of M samples.</summary>
public sealed record LoopSpec
{
    /// <summary>B: samples per iteration (|D|).</summary>
    public int B { get; init; } = 10;
    /// <summary>C: responses per prompt.</summary>
    public int C { get; init; } = 10;
    /// <summary>M: samples per minibatch (one gradient step each).</summary>
    public int M { get; init; } = 10;
    /// <summary>T: passes over D per iteration (sample reuse).</summary>
    public int T { get; init; } = 1;
    /// <summary>Total gradient steps of the run; iterations = steps / (T * B / M).</summary>
    public int GradientSteps { get; init; } = 300;
    /// <summary>Adam learning rate.</summary>
    public double LearningRate { get; init; } = 0.001;
    /// <summary>Evaluate the policy every this many gradient steps (and at step 0 and the end).</summary>
    public int EvalEvery { get; init; } = 10;
    /// <summary>Fresh samples drawn per evaluation.</summary>
    public int EvalSamples { get; init; } = 1000;
    /// <summary>Offline data: prompts in D_pref.</summary>
    public int DatasetPrompts { get; init; } = 64;
    /// <summary>Offline data: N responses per prompt in D_pref, sampled from the reference policy.</summary>
    public int DatasetResponses { get; init; } = 10;
    /// <summary>Sampling temperature (the paper uses 1).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>K: how many policy versions the Sampler may run ahead of the Learner. 0 is strictly on-policy. With K &gt; 0
    /// the batch that will be trained from version v is sampled, as soon as it may be, from version v - K (version 0 at
    /// the start), while the Learner is still training earlier batches: with the services in separate processes,
    /// sampling and learning overlap. The schedule is fixed, so the lag is deterministic (exactly K once past the
    /// start) and a run is as reproducible as at K = 0; this is also how a fixed lag is injected to study it.</summary>
    public int MaxStaleness { get; init; }
    /// <summary>Keep a full checkpoint (weights and trainer state) every this many gradient steps, and always version 0 and
    /// the end of the run; the versions between are transient: stored only while something may still load them (the
    /// Sampler, a restarted Learner), then removed. Every version's hash is recorded either way, and replay and resume
    /// re-train from the nearest kept checkpoint. 1 keeps every version.</summary>
    public int CheckpointEvery { get; init; } = 100;
}

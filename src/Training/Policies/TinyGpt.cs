using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Training.Policies;

/// <summary>
/// The bandit's combinatorial policy (PAPER.md, Problem 1, policy (b)): a nanoGPT-style decoder-only
/// transformer. Token and learned position embeddings, <c>layers</c> pre-LayerNorm blocks of causal
/// self-attention and a 4x MLP, a final LayerNorm and a linear head over the vocabulary; beside it a value
/// head (width -> 1) on the same final hidden state, for PPO's V(x, y_&lt;t) (<see cref="TokenLogProbsAndValues"/>).
/// The study's size: 3 layers, 3 heads, width 48, vocabulary 100, block 10 (about 95k parameters).
/// </summary>
/// <remarks>
/// Initialisation follows nanoGPT: every Linear and Embedding weight ~ N(0, 0.02), the residual
/// projections ~ N(0, 0.02 / sqrt(2 layers)), biases 0, LayerNorms (1, 0); all draws come from libtorch's
/// global generator, so build it under <see cref="TorchRuntime.GlobalSeedLock"/> after torch.manual_seed.
/// No dropout (the policy must be deterministic given its weights) and no weight tying (one state-dict
/// key per tensor). The causal mask is a non-persistent buffer: checkpoints hold the weights only.
/// The value head is built last and set to zero: its construction draws from the global generator only after
/// every policy parameter has been drawn, so the policy's own initial weights (and so the reference fit) are
/// what they were without it, and V = 0 everywhere until PPO trains it (no random value scale to unlearn).
/// It is a parameter like the others: the run's Adam updates it (only a value loss gives it a gradient), and
/// it is saved and loaded with the weights.
/// </remarks>
public sealed class TinyGpt : PolicyModel
{
    // Submodules in call order; field names are the state-dict keys (nanoGPT's).
    private readonly Embedding wte;             // token embedding: Vocab -> Width
    private readonly Embedding wpe;             // position embedding: BlockSize -> Width
    private readonly Tensor causal_mask;        // (BlockSize, BlockSize) bool buffer, true on and below the diagonal
    private readonly ModuleList<Block> h;       // Layers transformer blocks
    private readonly LayerNorm ln_f;            // final LayerNorm
    private readonly Linear lm_head;            // Width -> Vocab
    private readonly Linear value_head;         // Width -> 1: V(x, y_<t) for PPO, read from the same hidden state

    public TinyGpt(int vocab, int blockSize, int layers, int heads, int width) : base(nameof(TinyGpt))
    {
        if (vocab < 1 || blockSize < 2 || layers < 1 || heads < 1 || width < 1 || width % heads != 0)
            throw new ArgumentException($"TinyGpt: invalid sizes vocab {vocab}, block {blockSize}, layers {layers}, heads {heads}, width {width} (heads must divide width)");
        Vocab = vocab;
        BlockSize = blockSize;
        Heads = heads;
        var residualStd = 0.02 / Math.Sqrt(2.0 * layers);
        wte = Init(nn.Embedding(vocab, width));
        wpe = Init(nn.Embedding(blockSize, width));
        causal_mask = ones(blockSize, blockSize, dtype: ScalarType.Bool).tril();
        register_buffer(nameof(causal_mask), causal_mask, persistent: false);
        h = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new Block(width, heads, residualStd)).ToArray());
        ln_f = nn.LayerNorm(width);
        lm_head = Init(nn.Linear(width, vocab));
        value_head = nn.Linear(width, 1);   // last: every draw above is unchanged by it
        using (no_grad())
        {
            nn.init.zeros_(value_head.weight!);
            nn.init.zeros_(value_head.bias!);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Parameters of a model of these sizes, without building it: the two embeddings, per block two LayerNorms,
    /// attention (3d^2 + 3d, d^2 + d) and the 4x MLP (4d^2 + 4d, 4d^2 + d), the final LayerNorm, the head and the value head.
    /// </summary>
    public static double ParameterCount(int vocab, int blockSize, int layers, int width)
    {
        double v = vocab, d = width;
        return v * d + (double)blockSize * d + layers * (12 * d * d + 13 * d) + 2 * d + (d + 1) * v + d + 1;
    }

    /// <summary>Vocabulary size V (the bandit: the A actions; prompt ids share it).</summary>
    public int Vocab { get; }

    /// <summary>Longest sequence (prompt + response) the position embedding covers.</summary>
    public int BlockSize { get; }

    /// <summary>Number of transformer blocks.</summary>
    public int Layers => h.Count;

    /// <summary>Attention heads per block.</summary>
    public int Heads { get; }

    /// <summary>Embedding width d.</summary>
    public int Width => (int)wte.weight!.shape[1];

    /// <summary>
    /// Logits for tokens at positions start..start+T-1, start = the cache's length (0 without a cache).
    /// tokens: (B, T) int64 -> (B, T, V). With a cache, the blocks append this call's keys and values to it
    /// and attend over everything cached; use a cache under no_grad only (it is written in place).
    /// </summary>
    public Tensor forward(Tensor tokens, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return lm_head.forward(Hidden(tokens, cache)).MoveToOuterDisposeScope();   // (B, T, V)
    }

    /// <summary>The final hidden state (after ln_f) that both heads read: tokens (B, T) int64 -> (B, T, C).</summary>
    private Tensor Hidden(Tensor tokens, KvCache? cache)
    {
        var (b, t) = (tokens.shape[0], tokens.shape[1]);
        var start = cache?.Length ?? 0;
        if (start + t > BlockSize)
            throw new ArgumentException($"TinyGpt: {start} cached + {t} new positions exceed the block size {BlockSize}");
        if (cache is not null && (cache.Batch != b || cache.Layers.Count != Layers))
            throw new ArgumentException($"TinyGpt: the cache was made for batch {cache.Batch} and {cache.Layers.Count} layers, got batch {b} and {Layers} layers");
        if (cache is not null && is_grad_enabled())
            throw new InvalidOperationException("TinyGpt: a KV cache is written in place; use it under no_grad (sampling) only");

        var pos = arange(start, start + t, dtype: ScalarType.Int64);             // (T)
        var x = wte.forward(tokens) + wpe.forward(pos);                         // (B, T, C)
        var mask = causal_mask.narrow(0, start, t).narrow(1, 0, start + t);     // (T, start + T): query i sees keys <= start + i
        for (var i = 0; i < h.Count; i++)
            x = h[i].forward(x, mask, cache?.Layers[i], start);                 // (B, T, C)
        if (cache is not null) cache.Length = start + (int)t;
        return ln_f.forward(x);                                                 // (B, T, C)
    }

    /// <summary>
    /// log pi(y_t | x, y_&lt;t) for every response token. sequences: (N, P + R) int64, the prompt's P tokens
    /// then the response's R; returns (N, R), with the gradient when the parameters carry it.
    /// </summary>
    /// <remarks>
    /// Token t of the sequence is scored by the logits at position t - 1 (the model's prediction having seen
    /// tokens 0..t-1). The official code (understanding-rlhf) scores token t with the logits at position t,
    /// i.e. a prediction that has already seen the token; PAPER.md, "Known quirks". We do not copy that.
    /// </remarks>
    public Tensor TokenLogProbs(Tensor sequences, int promptLength)
    {
        using var scope = NewDisposeScope();
        var (inputs, targets, r) = Shifted(sequences, promptLength);              // (N, L-1), (N, L-1)
        var logProbs = F.log_softmax(forward(inputs), -1);                        // (N, L-1, V): row t-1 predicts token t
        var scored = logProbs.gather(2, targets.unsqueeze(2)).squeeze(2);         // (N, L-1)
        return scored.narrow(1, promptLength - 1, r).MoveToOuterDisposeScope();   // (N, R): the response tokens only
    }

    /// <summary>
    /// <see cref="TokenLogProbs"/> and the value head's V(x, y_&lt;t) for every response token from one forward pass:
    /// (N, R) each, with the gradient. The value of token t is read at position t - 1, the same hidden state whose
    /// logits score token t: the state in which y_t is chosen (TRL's values[:, context_length - 1 : -1]).
    /// </summary>
    public (Tensor LogProbs, Tensor Values) TokenLogProbsAndValues(Tensor sequences, int promptLength)
    {
        using var scope = NewDisposeScope();
        var (inputs, targets, r) = Shifted(sequences, promptLength);              // (N, L-1), (N, L-1)
        var hidden = Hidden(inputs, cache: null);                                 // (N, L-1, C)
        var logProbs = F.log_softmax(lm_head.forward(hidden), -1);                // (N, L-1, V): row t-1 predicts token t
        var scored = logProbs.gather(2, targets.unsqueeze(2)).squeeze(2);         // (N, L-1)
        var values = value_head.forward(hidden).squeeze(2);                       // (N, L-1): V at row t-1 is the state before token t
        return (scored.narrow(1, promptLength - 1, r).MoveToOuterDisposeScope(),   // (N, R)
            values.narrow(1, promptLength - 1, r).MoveToOuterDisposeScope());      // (N, R)
    }

    /// <summary>Inputs (tokens 0..L-2) and targets (tokens 1..L-1) of (N, L) sequences, and the response length R = L - P.</summary>
    private static (Tensor Inputs, Tensor Targets, long R) Shifted(Tensor sequences, int promptLength)
    {
        var length = sequences.shape[1];
        var r = length - promptLength;
        if (promptLength < 1 || r < 1)
            throw new ArgumentException($"TinyGpt: a sequence of {length} tokens has no response after a {promptLength}-token prompt");
        return (sequences.narrow(1, 0, length - 1), sequences.narrow(1, 1, length - 1), r);
    }

    /// <summary>log pi(y|x) = the sum of the response's token log-probs: [N], with the gradient.</summary>
    public Tensor SequenceLogProbs(Tensor sequences, int promptLength)
    {
        using var scope = NewDisposeScope();
        return TokenLogProbs(sequences, promptLength).sum(1).MoveToOuterDisposeScope();   // [N]
    }

    /// <summary>
    /// Samples <paramref name="responseLength"/> tokens after each prompt, autoregressively, from
    /// softmax(logits / temperature) with torch.multinomial on <paramref name="generator"/>: deterministic
    /// given the generator's state and the weights. prompts: (N, P) int64. Returns the response tokens
    /// (N, R) int64 and their log-probs (N, R) at temperature 1 (under the policy itself, whatever
    /// temperature sampled them). Runs under no_grad. With <paramref name="useCache"/> each block keeps the
    /// keys and values of the positions seen so far, so a step feeds only the newest token; without it every
    /// step re-runs the whole prefix (same tokens and log-probs up to float rounding).
    /// </summary>
    public (Tensor Tokens, Tensor LogProbs) Sample(Tensor prompts, int responseLength, double temperature, Generator generator, bool useCache = true)
    {
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be positive");
        var (n, p) = (prompts.shape[0], prompts.shape[1]);
        if (responseLength < 1 || p + responseLength - 1 > BlockSize)
            throw new ArgumentException($"TinyGpt: a {p}-token prompt and {responseLength} sampled tokens exceed the block size {BlockSize}");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var cache = useCache ? new KvCache(n, Layers, Heads, BlockSize, Width / Heads) : null;
        var sequence = prompts.alias();                                          // (N, P + step)
        var tokens = new List<Tensor>(responseLength);
        var logProbs = new List<Tensor>(responseLength);
        for (var step = 0; step < responseLength; step++)
        {
            using var stepScope = NewDisposeScope();
            // The cache already holds every position but the newest; the first step feeds the whole prompt.
            var input = cache is null || step == 0 ? sequence : sequence.narrow(1, sequence.shape[1] - 1, 1);   // (N, T_in)
            var logits = forward(input, cache).select(1, -1);                                                 // (N, V): the last position
            var next = multinomial(F.softmax(logits / temperature, -1), 1, replacement: true, generator: generator);   // (N, 1)
            tokens.Add(next.MoveToOuterDisposeScope());
            logProbs.Add(F.log_softmax(logits, -1).gather(1, next).MoveToOuterDisposeScope());                // (N, 1)
            sequence = cat([sequence, next], 1).MoveToOuterDisposeScope();                                    // (N, P + step + 1)
        }
        var sampled = cat(tokens, 1).MoveToOuterDisposeScope();      // (N, R)
        var scored = cat(logProbs, 1).MoveToOuterDisposeScope();     // (N, R)
        return (sampled, scored);
    }

    private static T Init<T>(T module) where T : nn.Module
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (name == "weight") nn.init.normal_(parameter, 0, 0.02);
            else nn.init.zeros_(parameter);
        }
        return module;
    }

    /// <summary>Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>
    private sealed class Block : nn.Module
    {
        private readonly LayerNorm ln_1;
        private readonly CausalSelfAttention attn;
        private readonly LayerNorm ln_2;
        private readonly Mlp mlp;

        public Block(int width, int heads, double residualStd) : base(nameof(Block))
        {
            ln_1 = nn.LayerNorm(width);
            attn = new CausalSelfAttention(width, heads, residualStd);
            ln_2 = nn.LayerNorm(width);
            mlp = new Mlp(width, residualStd);
            RegisterComponents();
        }

        /// <summary>x: (B, T, C), mask: (T, start + T) -> (B, T, C).</summary>
        public Tensor forward(Tensor x, Tensor mask, KvCache.Layer? cache, long start)
        {
            x = x + attn.forward(ln_1.forward(x), mask, cache, start);   // (B, T, C)
            return x + mlp.forward(ln_2.forward(x));                     // (B, T, C)
        }
    }

    /// <summary>Multi-head causal self-attention; with a cache, the keys and values of earlier positions come from it.</summary>
    private sealed class CausalSelfAttention : nn.Module
    {
        private readonly Linear c_attn;   // C -> 3C: query, key, value of every head
        private readonly Linear c_proj;   // C -> C: the heads' outputs back into the residual stream
        private readonly int heads;

        public CausalSelfAttention(int width, int heads, double residualStd) : base(nameof(CausalSelfAttention))
        {
            c_attn = Init(nn.Linear(width, 3 * width));
            c_proj = Init(nn.Linear(width, width));
            using (no_grad()) nn.init.normal_(c_proj.weight!, 0, residualStd);
            this.heads = heads;
            RegisterComponents();
        }

        /// <summary>x: (B, T, C), mask: (T, start + T) -> (B, T, C).</summary>
        public Tensor forward(Tensor x, Tensor mask, KvCache.Layer? cache, long start)
        {
            var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
            var hs = c / heads;
            var qkv = c_attn.forward(x).split(c, 2);                         // 3 x (B, T, C)
            var q = qkv[0].view(b, t, heads, hs).transpose(1, 2);            // (B, nh, T, hs)
            var k = qkv[1].view(b, t, heads, hs).transpose(1, 2);            // (B, nh, T, hs)
            var v = qkv[2].view(b, t, heads, hs).transpose(1, 2);            // (B, nh, T, hs)
            if (cache is not null)
                (k, v) = cache.Append(k, v, start);                          // (B, nh, start + T, hs)
            // softmax(q k^T / sqrt(hs) masked to the past) v; the bool mask is true where a query may look.
            var y = F.scaled_dot_product_attention(q, k, v, attn_mask: mask);   // (B, nh, T, hs)
            y = y.transpose(1, 2).contiguous().view(b, t, c);                // (B, T, C): heads side by side
            return c_proj.forward(y);                                        // (B, T, C)
        }
    }

    /// <summary>C -> 4C (GELU) -> C.</summary>
    private sealed class Mlp : nn.Module
    {
        private readonly Linear c_fc;
        private readonly GELU gelu;
        private readonly Linear c_proj;

        public Mlp(int width, double residualStd) : base(nameof(Mlp))
        {
            c_fc = Init(nn.Linear(width, 4 * width));
            gelu = nn.GELU();
            c_proj = Init(nn.Linear(4 * width, width));
            using (no_grad()) nn.init.normal_(c_proj.weight!, 0, residualStd);
            RegisterComponents();
        }

        /// <summary>x: (B, T, C) -> (B, T, C).</summary>
        public Tensor forward(Tensor x) => c_proj.forward(gelu.forward(c_fc.forward(x)));
    }

    /// <summary>
    /// Keys and values of the positions a batch has seen so far, one <see cref="Layer"/> per block, preallocated
    /// to the block size and filled in place. Owns its tensors (detached from any dispose scope); dispose it.
    /// </summary>
    public sealed class KvCache : IDisposable
    {
        public KvCache(long batch, int layers, int heads, int blockSize, int headSize)
        {
            Batch = batch;
            Layers = Enumerable.Range(0, layers).Select(_ => new Layer(batch, heads, blockSize, headSize)).ToArray();
        }

        /// <summary>Batch size B the cache was made for.</summary>
        public long Batch { get; }

        /// <summary>Positions 0..Length-1 are cached.</summary>
        public int Length { get; internal set; }

        public IReadOnlyList<Layer> Layers { get; }

        public void Dispose()
        {
            foreach (var layer in Layers) layer.Dispose();
        }

        /// <summary>One block's keys and values: (B, nh, BlockSize, hs) each.</summary>
        public sealed class Layer : IDisposable
        {
            private readonly Tensor keys;
            private readonly Tensor values;

            internal Layer(long batch, int heads, int blockSize, int headSize)
            {
                keys = zeros(batch, heads, blockSize, headSize).DetachFromDisposeScope();     // (B, nh, BlockSize, hs)
                values = zeros(batch, heads, blockSize, headSize).DetachFromDisposeScope();   // (B, nh, BlockSize, hs)
            }

            /// <summary>Writes k, v (B, nh, T, hs) at positions start..start+T-1; returns the views of positions 0..start+T-1.</summary>
            internal (Tensor Keys, Tensor Values) Append(Tensor k, Tensor v, long start)
            {
                var t = k.shape[2];
                keys.narrow(2, start, t).copy_(k);
                values.narrow(2, start, t).copy_(v);
                return (keys.narrow(2, 0, start + t), values.narrow(2, 0, start + t));   // (B, nh, start + T, hs)
            }

            public void Dispose()
            {
                keys.Dispose();
                values.Dispose();
            }
        }
    }
}

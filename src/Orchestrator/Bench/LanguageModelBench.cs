using System.Diagnostics;
using System.Text.Json.Nodes;
using PrefTune.Messages;
using PrefTune.Training;
using PrefTune.Training.LanguageModels;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefTune.Orchestrator.Bench;

/// <summary>
/// `preftune bench --lm`: what a language model costs on this machine. For stories260K (a path, or a random model of
/// its shape) and random Llamas of Pythia-14m's size and of ~30M parameters: sampling tokens/s at batch 1, 16 and 64
/// with and without the KV cache, and learner tokens/s (forward, backward and an AdamW step on 128-token sequences)
/// with the GFLOP/s that implies (6 x parameters x tokens), beside the measured matmul peak. With --precision instead: the
/// learner in fp32 against bf16 mixed precision (<see cref="MixedPrecision"/>), its speed and its loss after the same
/// steps. Prints, asserts nothing.
/// </summary>
public static class LanguageModelBench
{
    /// <summary>New tokens per cached sample (the 256).</summary>
    public const int NewTokens = 256;
    /// <summary>New tokens per uncached sample: re-running the prefix every step makes 256 at batch 64 take minutes.</summary>
    public const int UncachedNewTokens = 16;
    public const int PromptTokens = 8;
    public static readonly int[] Batches = [1, 16, 64];
    public const int LearnerRows = 8;
    public const int LearnerLength = 128;
    public const int LearnerSteps = 3;
    private const int Seed = 0;
    /// <summary>--precision: each timed step accumulates this many micro-batches of LearnerRows / this rows, as the learner
    /// does with micro_batch (where cached bf16 weight copies are cast once a step, not once a pass).</summary>
    public const int PrecisionMicroBatches = 4;
    /// <summary>--precision: steps are timed until this many seconds have passed too (3 steps of stories260K take 0.3 s,
    /// too short a window on a shared machine: two such runs differed 2x).</summary>
    public const double PrecisionSeconds = 5;
    /// <summary>--precision: optimizer steps of the loss comparison, each on one of <see cref="ParityBatches"/> fixed batches
    /// in turn (the same ones in both precisions) of <see cref="ParityRows"/> x <see cref="ParityLength"/> tokens.</summary>
    public const int ParitySteps = 50;
    public const int ParityBatches = 5;
    public const int ParityRows = 4;
    public const int ParityLength = 64;

    public static void Run(string? modelPath, Device device, int threads)
    {
        TorchRuntime.UseThreads(threads);
        var (fp32, bf16) = (MatmulPeak(ScalarType.Float32, device), MatmulPeak(ScalarType.BFloat16, device));
        AnsiConsole.MarkupLine(Markup.Escape($"device {device}, {threads} torch thread(s); matmul peak (1024 x 1024): fp32 {fp32:0} GFLOP/s, bf16 "
            + (bf16 is { } b ? $"{b:0} GFLOP/s" : "not available in this libtorch")));

        var sampling = new Table().AddColumns("model", "parameters", "batch", $"cached tokens/s ({NewTokens} new)", $"uncached tokens/s ({UncachedNewTokens} new)");
        sampling.Title = new TableTitle($"sampling: prompts of {PromptTokens} tokens, temperature 1, no stop token; uncached re-runs the prefix every step, "
            + $"so it gets only {UncachedNewTokens} new tokens (its cost per token grows with length: this flatters it)");
        var learner = new Table().AddColumns("model", "parameters", "tokens per step", "steps", "learner tokens/s", "GFLOP/s (6 N tokens)", "share of fp32 peak");
        learner.Title = new TableTitle($"learner: forward + backward + AdamW on {LearnerRows} x {LearnerLength} tokens, next-token cross-entropy, after one untimed step");

        foreach (var (name, open) in Models(modelPath))
        {
            using var model = open().to(device);
            var parameters = model.parameters().Sum(p => p.numel());
            Warm(model);
            foreach (var batch in Batches)
                sampling.AddRow(Markup.Escape(name), $"{parameters / 1e6:0.00}M", batch.ToString(),
                    $"{SamplingRate(model, batch, NewTokens, useCache: true):0}", $"{SamplingRate(model, batch, UncachedNewTokens, useCache: false):0}");
            var tokensPerSecond = LearnerRate(model);
            var gflops = 6.0 * parameters * tokensPerSecond / 1e9;
            learner.AddRow(Markup.Escape(name), $"{parameters / 1e6:0.00}M", (LearnerRows * LearnerLength).ToString(), LearnerSteps.ToString(),
                $"{tokensPerSecond:0}", $"{gflops:0.0}", $"{gflops / fp32:P0}");
        }
        AnsiConsole.Write(sampling);
        AnsiConsole.Write(learner);
    }

    /// <summary>
    /// `preftune bench --lm --precision`: for stories260K (or --model) and the ~30M Llama, learner tokens/s in fp32 and in
    /// bf16 (cached weight copies, and cast at every pass), and next-token loss after <see cref="ParitySteps"/> AdamW steps
    /// on the same batches from the same weights in each precision.
    /// </summary>
    public static void RunPrecision(string? modelPath, Device device, int threads)
    {
        TorchRuntime.UseThreads(threads);
        var (fp32Peak, bf16Peak) = (MatmulPeak(ScalarType.Float32, device), MatmulPeak(ScalarType.BFloat16, device));
        AnsiConsole.MarkupLine(Markup.Escape($"device {device}, {threads} torch thread(s); matmul peak (1024 x 1024): fp32 {fp32Peak:0} GFLOP/s, bf16 "
            + (bf16Peak is { } b ? $"{b:0} GFLOP/s" : "not available in this libtorch")));
        var speed = new Table().AddColumns("model", "parameters", "fp32 tokens/s", "bf16 tokens/s (cached copies)", "bf16 tokens/s (cast every pass)", "bf16 / fp32");
        speed.Title = new TableTitle($"learner: forward + backward of {LearnerRows} x {LearnerLength} tokens in {PrecisionMicroBatches} micro-batches, then AdamW; "
            + $"at least {LearnerSteps} steps and {PrecisionSeconds:0} s after one untimed");
        var parity = new Table().AddColumns("model", "fp32 loss, step 1", "bf16 loss, step 1", $"fp32 loss, step {ParitySteps}", $"bf16 loss, step {ParitySteps}",
            $"bf16 - fp32 at step {ParitySteps}", "largest |bf16 - fp32| over the steps");
        parity.Title = new TableTitle($"next-token loss over {ParitySteps} AdamW steps (lr 1e-3) cycling {ParityBatches} fixed batches of {ParityRows} x {ParityLength} "
            + "random tokens, from the same weights");
        foreach (var (name, open) in Models(modelPath).Where((_, i) => i != 1))   // not the Pythia-sized one: its vocabulary head dominates either way
        {
            using (var model = open().to(device))
            {
                var parameters = model.parameters().Sum(p => p.numel());
                var fp32 = LearnerRate(model, Precision.Fp32, cacheWeights: true, PrecisionMicroBatches, PrecisionSeconds);
                var cached = LearnerRate(model, Precision.Bf16, cacheWeights: true, PrecisionMicroBatches, PrecisionSeconds);
                var uncached = LearnerRate(model, Precision.Bf16, cacheWeights: false, PrecisionMicroBatches, PrecisionSeconds);
                speed.AddRow(Markup.Escape(name), $"{parameters / 1e6:0.00}M", $"{fp32:0}", $"{cached:0}", $"{uncached:0}", $"{cached / fp32:0.00}");
            }
            var fp32Losses = Losses(open, device, Precision.Fp32);
            var bf16Losses = Losses(open, device, Precision.Bf16);
            parity.AddRow(Markup.Escape(name), $"{fp32Losses[0]:0.0000}", $"{bf16Losses[0]:0.0000}", $"{fp32Losses[^1]:0.0000}", $"{bf16Losses[^1]:0.0000}",
                $"{bf16Losses[^1] - fp32Losses[^1]:+0.0000;-0.0000}", $"{fp32Losses.Zip(bf16Losses).Max(l => Math.Abs(l.First - l.Second)):0.0000}");
        }
        AnsiConsole.Write(speed);
        AnsiConsole.Write(parity);
    }

    /// <summary>The loss of each of <see cref="ParitySteps"/> AdamW steps on a fresh copy of the model (the seed makes the same weights).</summary>
    private static double[] Losses(Func<LanguageModel> open, Device device, Precision precision)
    {
        using var model = open().to(device);
        model.train();
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-3, weight_decay: 0.01);
        using var generator = new Generator(Seed, model.Device);
        var batches = Enumerable.Range(0, ParityBatches)
            .Select(_ => randint(0, model.Config.VocabSize, [ParityRows, ParityLength], dtype: ScalarType.Int64, device: model.Device, generator: generator).DetachFromDisposeScope())
            .ToArray();
        var losses = new double[ParitySteps];
        for (var step = 0; step < ParitySteps; step++)
        {
            using var scope = NewDisposeScope();
            losses[step] = NextTokenLoss(model, batches[step % ParityBatches], precision, cacheWeights: true, backward: true);
            optimizer.step();
            optimizer.zero_grad();
            MixedPrecision.WeightsChanged(model.parameters());   // the step wrote the weights: drop their bf16 copies
        }
        foreach (var batch in batches) batch.Dispose();
        return losses;
    }

    /// <summary>Mean next-token cross-entropy of ids (B, T) in <paramref name="precision"/>, its gradient added to the weights'.</summary>
    private static double NextTokenLoss(LanguageModel model, Tensor ids, Precision precision, bool cacheWeights, bool backward)
    {
        using var scope = NewDisposeScope();
        var t = ids.shape[1];
        Tensor loss;
        using (MixedPrecision.Use(precision, cacheWeights))
        {
            var logits = model.forward(ids.narrow(1, 0, t - 1));                                                   // (B, T-1, V)
            // The loss in float32 whatever the logits are (a no-op in fp32), as SequenceLogProbs does.
            loss = F.cross_entropy(logits.to_type(ScalarType.Float32).reshape(-1, model.Config.VocabSize), ids.narrow(1, 1, t - 1).reshape(-1));
        }
        if (backward) loss.backward();
        return loss.item<float>();
    }

    /// <summary>stories260K from --model (any model path works), else a random model of its shape; then the two random Llamas.</summary>
    private static IEnumerable<(string Name, Func<LanguageModel> Open)> Models(string? modelPath)
    {
        yield return modelPath is null
            ? ("stories260K-shaped (random; --model PATH for the real one)", () => Random(Llama(vocab: 512, hidden: 64, intermediate: 172, layers: 5, heads: 8, kvHeads: 4, maxPositions: 512, tied: true)))
            : (Path.GetFileName(Path.TrimEndingDirectorySeparator(modelPath)), () => Checkpoints.Load(modelPath, CPU));
        // Pythia-14m's sizes (6 layers, width 128, 4 heads, vocab 50304, untied head) as a Llama: SwiGLU at 4x width.
        yield return ("Pythia-14m-sized Llama (random)", () => Random(Llama(vocab: 50304, hidden: 128, intermediate: 512, layers: 6, heads: 4, kvHeads: 4, maxPositions: 2048, tied: false)));
        yield return ("~30M Llama (random)", () => Random(Llama30M));
    }

    /// <summary>The ~30M-parameter random Llama (also what `bench --checkpoint-io` stores).</summary>
    internal static LanguageModelConfig Llama30M =>
        Llama(vocab: 32000, hidden: 384, intermediate: 1024, layers: 10, heads: 6, kvHeads: 6, maxPositions: 2048, tied: true);

    /// <summary>A Llama config as Hugging Face writes it, read by the loader's own parser (one meaning for every key).</summary>
    internal static LanguageModelConfig Llama(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, int maxPositions, bool tied) =>
        LanguageModelConfig.FromHfConfig(new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["vocab_size"] = vocab,
            ["hidden_size"] = hidden,
            ["intermediate_size"] = intermediate,
            ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads,
            ["num_key_value_heads"] = kvHeads,
            ["max_position_embeddings"] = maxPositions,
            ["tie_word_embeddings"] = tied,
        }, "(bench config)");

    /// <summary>A seeded random model initialised as Hugging Face does (matrices and embeddings ~ N(0, 0.02), its
    /// initializer_range; norms at 1): TorchSharp's N(0, 1) embeddings make a tied head's logits ~20 wide and a first loss
    /// of hundreds, where a real model starts near ln V. Timings do not depend on the values.</summary>
    internal static LanguageModel Random(LanguageModelConfig config)
    {
        lock (TorchRuntime.GlobalSeedLock)
        {
            manual_seed(Seed);
            var model = new LanguageModel(config);
            using (no_grad())
                foreach (var weight in model.parameters().Where(p => p.dim() == 2))
                    nn.init.normal_(weight, 0, 0.02);
            return model;
        }
    }

    private static int[][] Prompts(LanguageModel model, int batch)
    {
        var random = new Random(Seed);
        return Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, PromptTokens).Select(_ => random.Next(3, model.Config.VocabSize)).ToArray()).ToArray();
    }

    /// <summary>The JIT, libtorch's kernels and its allocator warm up on a few tokens first.</summary>
    private static void Warm(LanguageModel model) =>
        TextGeneration.Generate(model, Prompts(model, 2), new SamplingSettings { MaxNewTokens = 4, Seed = Seed });

    private static double SamplingRate(LanguageModel model, int batch, int newTokens, bool useCache)
    {
        var clock = Stopwatch.StartNew();
        var responses = TextGeneration.Generate(model, Prompts(model, batch),
            new SamplingSettings { MaxNewTokens = newTokens, Seed = Seed, UseCache = useCache, MaxBatch = batch });
        return responses.Sum(r => r.Ids.Length) / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Learner tokens/s: <see cref="LearnerSteps"/> steps of forward, backward (over <paramref name="microBatches"/>
    /// micro-batches of the <see cref="LearnerRows"/> rows) and AdamW, after one untimed step; more steps until
    /// <paramref name="minSeconds"/> have passed.</summary>
    private static double LearnerRate(LanguageModel model, Precision precision = Precision.Fp32, bool cacheWeights = true, int microBatches = 1, double minSeconds = 0)
    {
        model.train();
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-4, weight_decay: 0.01);
        using var generator = new Generator(Seed, model.Device);
        void Step()
        {
            using var scope = NewDisposeScope();
            var ids = randint(0, model.Config.VocabSize, [LearnerRows, LearnerLength], dtype: ScalarType.Int64, device: model.Device, generator: generator);   // (B, T)
            optimizer.zero_grad();
            var rows = LearnerRows / microBatches;
            for (var m = 0; m < microBatches; m++)
                NextTokenLoss(model, ids.narrow(0, m * rows, rows), precision, cacheWeights, backward: true);   // item: waits for an asynchronous device
            optimizer.step();
            MixedPrecision.WeightsChanged(model.parameters());   // the step wrote the weights: drop their bf16 copies
        }
        Step();
        var clock = Stopwatch.StartNew();
        var steps = 0;
        for (; steps < LearnerSteps || clock.Elapsed.TotalSeconds < minSeconds; steps++) Step();
        model.eval();
        return steps * LearnerRows * LearnerLength / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Best GFLOP/s of a 1024 x 1024 matmul (2 n^3 flops) over a few rounds, or null if libtorch lacks the dtype here.</summary>
    private static double? MatmulPeak(ScalarType dtype, Device device)
    {
        const int n = 1024, reps = 10;
        try
        {
            using var scope = NewDisposeScope();
            using var generator = new Generator(Seed, device);
            var a = randn([n, n], dtype: ScalarType.Float32, device: device, generator: generator).to_type(dtype);
            var b = randn([n, n], dtype: ScalarType.Float32, device: device, generator: generator).to_type(dtype);
            var best = 0.0;
            for (var round = 0; round < 4; round++)
            {
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < reps; i++)
                {
                    using var repScope = NewDisposeScope();
                    a.matmul(b).sum().to_type(ScalarType.Float32).item<float>();   // item: the result is really computed before the clock stops
                }
                var rate = reps * 2.0 * n * n * n / clock.Elapsed.TotalSeconds / 1e9;
                if (round > 0) best = Math.Max(best, rate);   // round 0 warms up
            }
            return best;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }
}

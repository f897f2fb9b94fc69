using PrefTune.Messages;
using PrefTune.Training.LanguageModels;
using PrefTune.Training.Policies;
using static TorchSharp.torch;

namespace PrefTune.Training.Tasks.Length;

/// <summary>One row of the paper's relabeled preference data (PAPER.md, Problem 2): y_w and y_l hold prompt + response
/// text, y_ref prompt + a reference response; score_diff = y_w_score - y_l_score (>= 0).</summary>
/// <param name="YRef">Null allowed: no consumer reads it (the builder always writes one), and other tools' files may
/// leave it empty.</param>
public sealed record PreferenceRow(string Prompt, string YW, string YL, double YWScore, double YLScore, double ScoreDiff, string? YRef)
{
    /// <summary>"FILE, line N" (JSONL, from 1) or "FILE, row N" (Parquet, from 0) for a row read by
    /// <see cref="PreferenceDataFiles.ReadAsync"/>; null for a row built in memory. Part of equality, as every field of a
    /// record is: compare rows read from two files with it set to null.</summary>
    public string? Where { get; init; }

    /// <summary>How a message names the row: <see cref="Where"/>, or for a row built in memory its place among
    /// <paramref name="file"/>'s rows, from 1.</summary>
    public string NamedIn(string file, int index) => Where ?? $"{file}, row {index + 1}";
}

/// <summary>How a dataset is sampled and paired.</summary>
public sealed record PreferenceDatasetSettings
{
    /// <summary>C: responses sampled per prompt (at temperature 1, as the paper's reference samples).</summary>
    public int Responses { get; init; } = 4;
    /// <summary>Seeds the sampling: the same seed, model and prompts give the same rows.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>Keep pairs whose gold scores are equal (they teach a Bradley-Terry model nothing about the order, so
    /// they are dropped by default).</summary>
    public bool KeepTies { get; init; }
}

/// <summary>A built dataset: its rows, the lengths in tokens of every response scored (after skew's cut), and the mode
/// the mode goal scored against (given, or computed from those lengths).</summary>
public sealed record BuiltPreferenceDataset(IReadOnlyList<PreferenceRow> Rows, IReadOnlyList<int> Lengths, int? ModeLength, int PromptCount);

/// <summary>
/// Builds the preference data of a length task from its reference (the task's language model as loaded): C responses
/// per prompt, each scored by the goal's gold rule (<see cref="LengthTask.Gold"/>), and per prompt <b>every pair with a
/// gold gap</b> (C(C-1)/2 at most; ties dropped unless kept), y_w the higher-scored. Every pair rather than best vs
/// worst: a proxy reward model learns the order of the whole range, not only its ends.
/// Skew: every completion is cut to at most <see cref="LengthSpec.SkewTruncate"/> tokens before it is scored and
/// written (its stop token dropped), so the data never shows a long response: it covers the reference poorly while the
/// gold reward is min's. y_ref is the prompt's first sampled response, uncut: a sample of the reference itself.
/// </summary>
public static class PreferenceDataset
{
    public static BuiltPreferenceDataset Build(TaskSpec task, PreferenceDatasetSettings settings)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (settings.Responses < 2) throw new ArgumentException($"--responses {settings.Responses}: a pair needs at least 2 responses per prompt");
        var length = task.Length ?? new LengthSpec();
        var model = task.Model ?? throw new ArgumentException("task.model: missing; the reference that answers the prompts");
        var prompts = LengthTask.ReadPrompts(length.Prompts, model);
        var rollouts = Sample(model, prompts, settings);
        var scored = rollouts.Select(r => length.Goal == "skew" && length.SkewTruncate is { } cut ? Truncate(r, cut) : r).ToList();
        var lengths = scored.Select(r => r.ContentLength()).ToList();
        var mode = length.Goal == "mode" ? length.ModeLength ?? ModeOf(lengths) : length.ModeLength;

        using var tokenizer = TextTokenizers.Load(LengthTask.TokenizerPath(model));
        string Text(Rollout r) => tokenizer.Decode([.. r.PromptTokens, .. r.ResponseTokens.Take(r.ContentLength())]);
        var rows = new List<PreferenceRow>();
        foreach (var group in Enumerable.Range(0, rollouts.Count).GroupBy(i => rollouts[i].Group))
        {
            var members = group.ToList();
            var prompt = tokenizer.Decode(rollouts[members[0]].PromptTokens);
            var reference = Text(rollouts[members[0]]);
            var scores = members.Select(i => LengthTask.Gold(length.Goal, lengths[i], mode)).ToList();
            for (var a = 0; a < members.Count; a++)
            for (var b = a + 1; b < members.Count; b++)
            {
                if (scores[a] == scores[b] && !settings.KeepTies) continue;
                // a tie keeps sample order: the earlier response is y_w
                var (w, l) = scores[a] >= scores[b] ? (a, b) : (b, a);
                rows.Add(new PreferenceRow(prompt, Text(scored[members[w]]), Text(scored[members[l]]),
                    scores[w], scores[l], scores[w] - scores[l], reference));
            }
        }
        return new BuiltPreferenceDataset(rows, lengths, mode, prompts.Count);
    }

    /// <summary>C responses to every prompt, group-major, in chunks of prompts that fill max_batch (each chunk seeded from
    /// the seed and its index, so the rows depend on the seed and the spec, not on anything else).</summary>
    private static List<Rollout> Sample(LanguageModelSpec model, IReadOnlyList<Prompt> prompts, PreferenceDatasetSettings settings)
    {
        TorchRuntime.UseThreads(1);   // one thread: deterministic sampling, as the services run
        var family = new LanguageModelFamily(model);
        using var policy = family.CreatePolicy(seed: 0);
        var perChunk = Math.Max(1, model.MaxBatch / settings.Responses);
        var rollouts = new List<Rollout>();
        for (var start = 0; start < prompts.Count; start += perChunk)
        {
            using var scope = NewDisposeScope();   // generation's tensors live only for its chunk
            var chunk = prompts.Skip(start).Take(perChunk).ToList();
            var chunkIndex = start / perChunk;
            // sample ids are not written to the rows, but a deterministic one keeps two builds of a seed identical
            var batchId = SampleIds.Of(new Guid([.. BitConverter.GetBytes(settings.Seed), .. new byte[8]]), chunkIndex);
            var generated = family.Generate(policy, chunk, settings.Responses, temperature: 1.0,
                seed: settings.Seed * 1_000_003 + chunkIndex, policyVersion: 0, batchId);
            // Group is the index within a chunk: make it the prompt's index in the file.
            rollouts.AddRange(generated.Select(r => r with { Group = start + r.Group }));
        }
        return rollouts;
    }

    /// <summary>Skew's cut: a response longer than <paramref name="maxTokens"/> keeps its first tokens and counts as
    /// truncated (no stop token); a shorter one is kept whole.</summary>
    public static Rollout Truncate(Rollout rollout, int maxTokens) =>
        rollout.ContentLength() <= maxTokens ? rollout : rollout with
        {
            ResponseTokens = rollout.ResponseTokens[..maxTokens],
            TokenLogProbs = rollout.TokenLogProbs[..maxTokens],
            Finish = FinishReason.Length,
        };

    /// <summary>The most frequent length; the shortest of equally frequent ones (a fixed rule, so the mode is reproducible).</summary>
    public static int ModeOf(IReadOnlyList<int> lengths) =>
        lengths.Count == 0 ? throw new ArgumentException("no responses to take a mode of")
        : lengths.GroupBy(x => x).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
}

/// <summary>A histogram of response lengths in tokens, for a dataset's report: at most 16 equal bins from 0.</summary>
public sealed record LengthHistogram(int BinWidth, IReadOnlyList<int> Counts)
{
    public static LengthHistogram Of(IReadOnlyList<int> lengths)
    {
        var max = lengths.Count == 0 ? 0 : lengths.Max();
        var width = Math.Max(1, (max + 16) / 16);   // ceil((max + 1) / 16): every length falls in one of 16 bins
        var counts = new int[max / width + 1];
        foreach (var l in lengths) counts[l / width]++;
        return new LengthHistogram(width, counts);
    }

    /// <summary>One line per bin, e.g. "  0-7   | ####  12".</summary>
    public IEnumerable<string> Lines()
    {
        var most = Math.Max(1, Counts.DefaultIfEmpty(0).Max());
        return Counts.Select((c, i) => $"{i * BinWidth,4}-{(i + 1) * BinWidth - 1,-4} | {new string('#', (int)Math.Round(40.0 * c / most))} {c}");
    }
}

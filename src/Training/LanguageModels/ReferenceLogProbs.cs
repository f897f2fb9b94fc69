using static TorchSharp.torch;

namespace PrefTune.Training.LanguageModels;

/// <summary>
/// log pi_ref of every sample of one batch, computed once when the batch arrives (no gradient, in micro-batches) and
/// read by sample id in every pass and minibatch after: pi_ref is frozen, so T passes need its forward pass once,
/// not T times. Holds plain arrays, no tensors: nothing to dispose, and a minibatch's tensors are made in its scope.
/// </summary>
public sealed class ReferenceLogProbs
{
    private readonly Dictionary<Guid, (float Sum, float[] Tokens)> bySample;

    private ReferenceLogProbs(Dictionary<Guid, (float Sum, float[] Tokens)> bySample) => this.bySample = bySample;

    public int Count => bySample.Count;

    /// <summary>Scores the batch under the frozen reference model.</summary>
    public static ReferenceLogProbs Compute(LanguageModel reference, IReadOnlyList<(Guid Id, TokenSequence Sequence)> samples, int microBatch, int padId = 0) =>
        Compute(batch => SequenceLogProbs.Score(reference, SequenceLogProbs.Pack(reference, batch, padId), tokens: true), samples, microBatch);

    /// <summary>Scores the batch with <paramref name="score"/> (one call per micro-batch; Tokens must be filled).</summary>
    public static ReferenceLogProbs Compute(Func<IReadOnlyList<TokenSequence>, SequenceScores> score,
        IReadOnlyList<(Guid Id, TokenSequence Sequence)> samples, int microBatch)
    {
        if (microBatch < 1) throw new ArgumentOutOfRangeException(nameof(microBatch), microBatch, "micro_batch must be at least 1");
        var duplicate = samples.GroupBy(s => s.Id).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"sample {duplicate.Key} appears twice in the batch", nameof(samples));
        var bySample = new Dictionary<Guid, (float, float[])>(samples.Count);
        using var noGrad = no_grad();
        foreach (var chunk in samples.Chunk(microBatch))
        {
            using var scope = NewDisposeScope();
            var scores = score(chunk.Select(s => s.Sequence).ToList());
            var sums = scores.Sum.cpu().data<float>().ToArray();                                   // (m)
            var tokens = (scores.Tokens ?? throw new InvalidOperationException("the reference scorer returned no token log-probs")).cpu();   // (m, R)
            for (var i = 0; i < chunk.Length; i++)
                bySample[chunk[i].Id] = (sums[i], tokens[i].narrow(0, 0, chunk[i].Sequence.Response.Length).data<float>().ToArray());
        }
        return new ReferenceLogProbs(bySample);
    }

    /// <summary>log pi_ref(y|x) of the samples, in the order given: (N) float32 in the caller's dispose scope.</summary>
    public Tensor Sums(IEnumerable<Guid> ids, Device? device = null) =>
        tensor(ids.Select(id => Of(id).Sum).ToArray(), device: device);

    /// <summary>log pi_ref(y_t|x, y_&lt;t) of the samples, zero-padded to <paramref name="length"/>: (N, length) float32.</summary>
    public Tensor Tokens(IReadOnlyList<Guid> ids, int length, Device? device = null)
    {
        var values = new float[ids.Count, length];
        for (var i = 0; i < ids.Count; i++)
        {
            var row = Of(ids[i]).Tokens;
            if (row.Length > length) throw new ArgumentOutOfRangeException(nameof(length), length, $"sample {ids[i]} has {row.Length} response tokens");
            for (var t = 0; t < row.Length; t++) values[i, t] = row[t];
        }
        return tensor(values, device: device);
    }

    private (float Sum, float[] Tokens) Of(Guid id) =>
        bySample.TryGetValue(id, out var value) ? value : throw new KeyNotFoundException($"sample {id} was not in the batch the reference log-probs were computed for");
}

using System.Buffers.Binary;
using System.Text;
using PrefTune.Orchestrator.Reporting;
using Xunit;

namespace PrefTune.Tests.Unit.Reporting;

/// <summary>
/// `--report-to tensorboard` writes each run's metrics.jsonl lines as TensorBoard scalars. The event files are read back
/// here with a reader of the format written for the test (TFRecord framing: length, CRC, an Event protobuf with its
/// step and a Summary of tag and simple_value), not with the writer's own code, so a wrong tag, step or value shows.
/// </summary>
public sealed class When_metrics_are_reported_to_tensorboard : IDisposable
{
    private readonly string _folder = SyntheticRuns.TempFolder();

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    /// <summary>Every (tag, step, value) of the scalar events in one run folder's event files.</summary>
    private static List<(string Tag, long Step, float Value)> Scalars(string runFolder)
    {
        var scalars = new List<(string, long, float)>();
        var files = Directory.GetFiles(runFolder, "events.out.tfevents.*");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var bytes = File.ReadAllBytes(file);
            for (var at = 0; at < bytes.Length;)
            {
                var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
                var data = bytes.AsSpan(at + 12, length);   // after the length and its masked CRC
                at += 12 + length + 4;                      // and the data's masked CRC
                long step = 0;
                foreach (var (field, value) in Fields(data.ToArray()))
                {
                    if (field == 2) step = (long)value.Varint;
                    if (field != 5) continue;   // Event.summary
                    foreach (var (f, v) in Fields(value.Bytes!))
                    {
                        if (f != 1) continue;   // Summary.value
                        string? tag = null;
                        float simple = float.NaN;
                        foreach (var (g, w) in Fields(v.Bytes!))
                        {
                            if (g == 1) tag = Encoding.UTF8.GetString(w.Bytes!);
                            if (g == 2) simple = BitConverter.Int32BitsToSingle((int)w.Varint);
                        }
                        scalars.Add((tag!, step, simple));
                    }
                }
            }
        }
        return scalars;
    }

    /// <summary>A protobuf message's fields: varints, fixed 32/64-bit values (as bits in Varint) and length-delimited bytes.</summary>
    private static IEnumerable<(int Field, (ulong Varint, byte[]? Bytes) Value)> Fields(byte[] message)
    {
        var at = 0;
        ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; ; shift += 7)
            {
                var b = message[at++];
                result |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return result;
            }
        }
        while (at < message.Length)
        {
            var key = Varint();
            var (field, wire) = ((int)(key >> 3), (int)(key & 7));
            switch (wire)
            {
                case 0: yield return (field, (Varint(), null)); break;
                case 1: yield return (field, (BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(at)), null)); at += 8; break;
                case 5: yield return (field, (BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(at)), null)); at += 4; break;
                case 2:
                    var length = (int)Varint();
                    yield return (field, (0, message.AsSpan(at, length).ToArray()));
                    at += length;
                    break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
    }

    [Fact]
    public void Each_run_gets_a_folder_with_every_metric_of_its_lines_at_its_step()
    {
        var dpo = SyntheticRuns.Run("dpo (online)", 1, 0.1, 0.5, 0.75);
        var bon = SyntheticRuns.Run("best-of-n (online)", 1, 0.2, 0.3, 0.4);

        var written = TensorBoardReport.Write(_folder, [dpo, bon]);

        Assert.Equal(Path.Combine(_folder, "tensorboard"), written);
        Assert.Equal(["best-of-n__online_-seed1", "dpo__online_-seed1"], Directory.GetDirectories(written).Select(Path.GetFileName).Order());
        var scalars = Scalars(Path.Combine(written, "dpo__online_-seed1"));
        Assert.Contains(("eval/gold_reward_mean", 10L, 0.5f), scalars);
        Assert.Contains(("eval/gold_reward_mean", 20L, 0.75f), scalars);
        Assert.Contains(("eval/gold_reward_std", 20L, 0.375f), scalars);
        Assert.Contains(("train/loss", 4L, 0.25f), scalars);
        Assert.Contains(("train/rewards/margins", 20L, 2.0f), scalars);
        // one scalar per number in metrics.jsonl's lines, none for the header (run_id, label, seed, kind, step)
        var numbers = MetricsWriter.Lines(dpo).Sum(line => line.Count(kv => !MetricsWriter.HeaderKeys.Contains(kv.Key)));
        Assert.Equal(numbers, scalars.Count);
        Assert.DoesNotContain(scalars, s => s.Tag is "seed" or "step");
    }

    [Fact]
    public void The_option_takes_tensorboard_or_none_and_names_anything_else()
    {
        Assert.True(TensorBoardReport.Wanted("tensorboard"));
        Assert.False(TensorBoardReport.Wanted("none"));
        Assert.False(TensorBoardReport.Wanted(null));
        var error = Assert.Throws<ArgumentException>(() => TensorBoardReport.Wanted("wandb"));
        Assert.Contains("--report-to: 'wandb' is not one of none, tensorboard", error.Message);
    }
}

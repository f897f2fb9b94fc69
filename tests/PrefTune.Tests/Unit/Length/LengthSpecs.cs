using PrefTune.Messages;
using PrefTune.Tests.Unit.Experiments;
using PrefTune.Tests.Unit.LanguageModels;

namespace PrefTune.Tests.Unit.Length;

/// <summary>A length task on the stories260K fixture with two prompts the tests write (read in place, never copied).</summary>
internal static class LengthSpecs
{
    /// <summary>The first two of the shipped story endings: stories near their end, so some responses stop early and some
    /// run to the cap (an opening like "Once upon a time" runs to any short cap every time, and every pair ties).</summary>
    public static readonly Lazy<string> TwoPrompts = new(() =>
    {
        var file = Path.Combine(Path.GetTempPath(), $"preftune-length-prompts-{Environment.ProcessId}.jsonl");
        File.WriteAllLines(file, File.ReadLines(Path.Combine(ExperimentText.RepositoryRoot(), "experiments", "prompts", "story-endings.jsonl")).Take(2));
        return file;
    });

    /// <summary>stories260K answering the two prompts, stopping on BOS = 1 (how its stories end), at most 48 new tokens.</summary>
    public static TaskSpec Stories(LengthSpec? length = null) => new()
    {
        Kind = "length",
        Length = (length ?? new LengthSpec()) with { Prompts = TwoPrompts.Value },
        Model = new LanguageModelSpec { Path = Fixtures.StoriesHf, MaxNewTokens = 48, StopIds = "1" },
    };

    /// <summary>A fresh folder under the temp directory, for files a test writes.</summary>
    public static string TempFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"preftune-length-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    }
}

using PrefTune.Messages;
using PrefTune.Orchestrator.Preparation;
using PrefTune.Orchestrator.Studies;
using Xunit;

namespace PrefTune.Tests.Unit.Studies;

/// <summary>What a prepared task (dataset and reward model) is reused for: the task and settings it was made from.</summary>
public class When_a_task_preparation_is_keyed
{
    private static readonly TaskSpec Task = new()
    {
        Kind = "length",
        Length = new LengthSpec { Goal = "min", Prompts = "no-such-prompts.jsonl" },
        Model = new LanguageModelSpec { Path = "no-such-model" },
    };

    [Fact]
    public void The_learners_precision_does_not_change_the_key_and_the_model_does()
    {
        var key = TaskPreparation.KeyOf(Task, new StudyPreparation(), threads: 1);
        // Preparing samples in float32 and trains a reward model of its own: bf16 runs share the fp32 runs' preparation.
        Assert.Equal(key, TaskPreparation.KeyOf(Task with { Model = Task.Model! with { Precision = Precision.Bf16 } }, new StudyPreparation(), threads: 1));
        Assert.NotEqual(key, TaskPreparation.KeyOf(Task with { Model = Task.Model! with { MaxNewTokens = 32 } }, new StudyPreparation(), threads: 1));
    }
}

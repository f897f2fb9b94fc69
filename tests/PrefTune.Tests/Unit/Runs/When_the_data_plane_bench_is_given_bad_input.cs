using PrefTune.Tests.Integration.Cli;
using Xunit;
using static PrefTune.Tests.Unit.Experiments.ExperimentText;

namespace PrefTune.Tests.Unit.Runs;

/// <summary>`preftune bench --data-plane` refusing input as a user meets it (a separate process): the checks run before
/// the database is reached, so the unreachable one given here is never asked.</summary>
public sealed class When_the_data_plane_bench_is_given_bad_input
{
    private static Task<(int ExitCode, string Output, string Error)> Run(params string[] args) =>
        PrefTuneProcess.RunAsync(database: "Host=127.0.0.1;Port=1;Username=nobody", schema: "unused", ["bench", Path.Combine(RepositoryRoot(), "experiments", "bandit-peak70.yaml"), "--data-plane", .. args]);

    [Theory]
    [InlineData("--method", "nosuch", "--method: no method 'nosuch'")]
    [InlineData("--steps", "0", "--steps: 0 is not a positive number")]
    public async Task It_exits_2_with_a_message(string option, string value, string message)
    {
        var (code, _, error) = await Run(option, value);
        Assert.True(code == 2, error);
        Assert.Contains(message, error);
        Assert.DoesNotContain("   at ", error);
    }
}

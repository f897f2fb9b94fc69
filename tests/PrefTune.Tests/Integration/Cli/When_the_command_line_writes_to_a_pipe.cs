using PrefTune.Training.Methods;
using Xunit;

namespace PrefTune.Tests.Integration.Cli;

/// <summary>
/// What `preftune` prints when its output is not a terminal (a pipe, a file, CI): Spectre.Console then assumes 80
/// columns. These commands need no database; the connection string given is never used.
/// </summary>
public sealed class When_the_command_line_writes_to_a_pipe
{
    private const string Unused = "Host=127.0.0.1;Port=1;Username=nobody";

    [Fact]
    public async Task Methods_keeps_each_method_s_row_on_one_line_within_80_columns()
    {
        var methods = await PrefTuneAsync("methods");

        Assert.True(methods.ExitCode == 0, methods.Error);
        var lines = methods.Output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.All(lines, l => Assert.True(l.TrimEnd().Length <= 80, l));
        foreach (var method in MethodRegistry.All)
        {
            static string Mark(bool on) => on ? "yes" : "no";
            string[] marks = [Mark(method.Axes.OnPolicySampling), Mark(method.Axes.OfflineData), Mark(method.Axes.SampleReuse), Mark(method.Axes.NegativeGradient)];
            var row = Assert.Single(lines, l => l.Split('│', StringSplitOptions.TrimEntries).ElementAtOrDefault(1) == method.Name);
            Assert.Equal(marks, row.Split('│', StringSplitOptions.TrimEntries).Skip(2).Take(4));
            Assert.Contains(lines, l => l.Trim().StartsWith(method.Summary.Split(' ')[0], StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Bare_preftune_prints_the_help_and_exits_1()
    {
        var bare = await PrefTuneAsync();

        Assert.Equal(1, bare.ExitCode);
        Assert.Contains("USAGE:", bare.Output);
        Assert.Contains("run <EXPERIMENT>", bare.Output);
    }

    [Fact]
    public async Task Each_command_s_help_lists_only_the_options_it_uses()
    {
        var runs = await PrefTuneAsync("runs", "--help");
        var show = await PrefTuneAsync("show", "--help");
        var run = await PrefTuneAsync("run", "--help");

        foreach (var help in new[] { runs.Output, show.Output })
        {
            Assert.Contains("--database", help);
            Assert.Contains("--schema", help);
            Assert.DoesNotContain("--broker", help);
            Assert.DoesNotContain("--checkpoints", help);
            Assert.DoesNotContain("--external-services", help);
        }
        Assert.Contains("--broker", run.Output);
        Assert.Contains("--external-services", run.Output);
        Assert.Contains("--output", run.Output);
    }

    [Fact]
    public async Task Every_command_s_help_prints_whole()
    {
        var bare = await PrefTuneAsync();
        // the command names the bare help lists: "    run <EXPERIMENT>   Run an ..." -> "run"
        var commands = bare.Output[bare.Output.IndexOf("COMMANDS:", StringComparison.Ordinal)..].Split('\n').Skip(1)
            .Select(line => System.Text.RegularExpressions.Regex.Match(line, @"^    ([a-z][a-z-]*)\b").Groups[1].Value)
            .Where(name => name != "").ToList();
        Assert.Contains("train-rm", commands);
        Assert.Contains("sft", commands);

        foreach (var command in commands)
        {
            var help = await PrefTuneAsync(command, "--help");
            // Spectre stops at a description it cannot read as markup (e.g. an unescaped "[0, 1)") and exits non-zero
            Assert.True(help.ExitCode == 0 && help.Output.Contains("USAGE:"), $"preftune {command} --help: exit {help.ExitCode}\n{help.Output}\n{help.Error}");
        }
    }

    private static Task<(int ExitCode, string Output, string Error)> PrefTuneAsync(params string[] args) =>
        PrefTuneProcess.RunAsync(Unused, "unused", args);
}

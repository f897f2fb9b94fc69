using PrefTune.Orchestrator.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;

namespace PrefTune.Orchestrator.Cli;

/// <summary>Bad input and unreachable servers end with one clear line on stderr and a distinct exit code, not a stack trace.</summary>
public static class CliErrors
{
    public const int BadInput = 2;
    public const int Unreachable = 3;

    public static async Task<int> RunAsync(Func<Task<int>> run)
    {
        try
        {
            return await run();
        }
        catch (OperationCanceledException e) when (Hosting.ShutdownSignals.Received is not null)
        {
            // a signal stopped the command: say what was stopped and how to go on (RunStoppedException's message)
            return Fail(e is Runs.RunStoppedException ? e.Message : $"stopped by {Hosting.ShutdownSignals.Name}", Hosting.ShutdownSignals.ExitCode);
        }
        catch (ExperimentFileException e)
        {
            return Fail(e.Message, BadInput);
        }
        catch (Training.LanguageModels.ModelLoadException e)
        {
            return Fail(e.Message, BadInput);
        }
        catch (Exception e) when (e is ArgumentException or CommandParseException or CommandRuntimeException or FileNotFoundException)
        {
            return Fail(e.Message, BadInput);
        }
        catch (Exception e) when (e is InvalidOperationException or Runs.StageException)
        {
            return Fail(e.Message, Unreachable);
        }
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"preftune: {message}");
        return code;
    }
}

namespace PrefTune.Storage.Postgres;

/// <summary>
/// The data folder or the private cluster in it cannot be used as it is: the message names the file and
/// what to do. An <see cref="ArgumentException"/> because the data folder is the user's input
/// (<c>--data</c>, <c>PREFTUNE_DATAFOLDER</c>): the command line exits 2 with the message, like any bad input.
/// </summary>
public sealed class DataFolderException(string message) : ArgumentException(message);

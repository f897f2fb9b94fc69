// The Scorer on its own: `dotnet PrefTune.Scorer.dll --broker amqp://... --database "Host=..."`.
return await PrefTune.ServiceDefaults.PrefTuneHost.RunServiceAsync(new PrefTune.Scorer.ScorerRole(), args);

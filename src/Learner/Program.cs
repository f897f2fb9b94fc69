// The Learner on its own: `dotnet PrefTune.Learner.dll --broker amqp://... --database "Host=..."`.
return await PrefTune.ServiceDefaults.PrefTuneHost.RunServiceAsync(new PrefTune.Learner.LearnerRole(), args);

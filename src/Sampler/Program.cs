// The Sampler on its own: `dotnet PrefTune.Sampler.dll --broker amqp://... --database "Host=..."`.
return await PrefTune.ServiceDefaults.PrefTuneHost.RunServiceAsync(new PrefTune.Sampler.SamplerRole(), args);

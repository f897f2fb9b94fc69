using MassTransit;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PrefTune.Messages;
using PrefTune.Orchestrator.Runs;
using PrefTune.ServiceDefaults;

namespace PrefTune.Orchestrator.Hosting;

/// <summary>How the stage services are hosted for a session.</summary>
public enum ServiceHosting
{
    /// <summary>No broker: everything in this process on the in-memory transport.</summary>
    InProcess,
    /// <summary>A broker, and this program starts the sampler, scorer and learner as child processes.</summary>
    ChildProcesses,
    /// <summary>A broker, and the services run elsewhere (other machines); wait for them to answer.</summary>
    External,
}

/// <summary>
/// A started pipeline: connections checked, bus up, services answering. Runs experiments one run at a
/// time (each run is itself strictly sequential, which keeps it reproducible).
/// </summary>
public sealed class PipelineSession : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly ServiceProcesses? _children;

    private PipelineSession(IHost host, ServiceProcesses? children, PrefTuneOptions options)
    {
        _host = host;
        _children = children;
        Options = options;
    }

    public PrefTuneOptions Options { get; }
    public IDocumentStore Store => _host.Services.GetRequiredService<IDocumentStore>();
    public EventJournal Journal => _host.Services.GetRequiredService<EventJournal>();
    public Stages Stages => _host.Services.GetRequiredService<Stages>();
    public ServiceProcesses? Children => _children;
    /// <summary>The Orchestrator's bus, for observers that count what it carries (`bench --data-plane`).</summary>
    public IBus Bus => _host.Services.GetRequiredService<IBus>();

    public string Transport => string.IsNullOrWhiteSpace(Options.Broker) ? "in-memory" : BrokerAddress.Parse(Options.Broker).ToString();

    public static async Task<PipelineSession> StartAsync(PrefTuneOptions options, ServiceHosting hosting, CancellationToken ct)
    {
        if (hosting != ServiceHosting.InProcess && string.IsNullOrWhiteSpace(options.Broker))
            throw new ArgumentException("broker: separate service processes need a broker address (--broker amqp://...)");
        options = await PrefTuneHost.ConnectAsync(options, ct);
        var host = OrchestratorHost.Build(options);
        ServiceProcesses? children = null;
        try
        {
            await host.StartAsync(ct);
            if (hosting == ServiceHosting.ChildProcesses)
                children = ServiceProcesses.Start(options, ServiceDirectory.RequiredRoles, Path.Combine(Path.GetFullPath(options.DataFolder), "logs"),
                    host.Services.GetRequiredService<ServiceRestarts>());
            if (hosting != ServiceHosting.InProcess)
            {
                var wait = TimeSpan.FromSeconds(Math.Max(60, options.StageTimeoutSeconds));
                await host.Services.GetRequiredService<ServiceDirectory>().WaitForAsync(ServiceDirectory.RequiredRoles, wait, ct);
            }
            return new PipelineSession(host, children, options);
        }
        catch
        {
            children?.Dispose();
            await StopHostAsync(host);
            throw;
        }
    }

    public Task<RunOutcome> RunAsync(RunSpec spec, IProgress<RunProgress>? progress, CancellationToken ct) =>
        _host.Services.GetRequiredService<RunDriver>().RunAsync(spec, Transport, progress, ct);

    public Task<RunOutcome> ResumeAsync(RecordedRun recorded, IProgress<RunProgress>? progress, CancellationToken ct) =>
        _host.Services.GetRequiredService<RunDriver>().ResumeAsync(recorded, Transport, progress, ct);

    /// <summary>A counterfactual replay: <paramref name="spec"/> trained on <paramref name="recorded"/>'s batches, as a new run.</summary>
    public Task<RunOutcome> ReplayAsync(RunSpec spec, RecordedRun recorded, IProgress<RunProgress>? progress, CancellationToken ct) =>
        _host.Services.GetRequiredService<RunDriver>().ReplayAsync(spec, recorded, Transport, progress, ct);

    /// <summary>An exact replay: the recorded run's Learner trajectory rebuilt and its checkpoint hashes compared.</summary>
    public Task<ReplayReport> ReplayExactlyAsync(RecordedRun recorded, CancellationToken ct) =>
        _host.Services.GetRequiredService<RunReplay>().ReplayAsync(recorded, ct);

    public async ValueTask DisposeAsync()
    {
        _children?.Dispose();
        await StopHostAsync(_host);
    }

    private static async Task StopHostAsync(IHost host)
    {
        using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            await host.StopAsync(stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // a broker that vanished mid-run cannot be closed politely; the process is ending anyway
        }
        host.Dispose();
    }
}

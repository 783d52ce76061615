using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using PgProxy.Core.Interception;
using PgProxy.Core.Plugins;
using PgProxy.Core.Rules;
using PgProxy.Core.Sessions;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Tests.Admin;

/// <summary>A proxy for the console to act on, without sockets: what it reports is set by the test, what is done to it is recorded.</summary>
internal sealed class FakeConsoleHost : IConsoleHost
{
    public FakeConsoleHost(ProxyConfig? config = null)
    {
        Config = config ?? new ProxyConfig(
            [],
            new ProxySettings(),
            [new InstanceConfig(new EndpointConfig("proxy", "127.0.0.1", 6432), new EndpointConfig("postgresql", "db.internal", 5432), InterceptConfig.None, InstanceLimits.Default)],
            Path.GetTempPath());
    }

    public ProxyConfig Config { get; set; }

    public List<SessionView> SessionList { get; } = [];

    public ReloadResult NextReload { get; set; } = new() { Generation = 2 };

    public CancelOutcome NextCancel { get; set; } = CancelOutcome.Sent;

    public List<long> Killed { get; } = [];

    public List<long> Cancelled { get; } = [];

    public List<bool> Stops { get; } = [];

    /// <summary>PAUSE, RESUME and RECONNECT as the console asked them, with the instance named (null: all).</summary>
    public List<(ConsoleCommandKind Action, string? Instance)> Steered { get; } = [];

    /// <summary>The pooling instances PAUSE and the others act on.</summary>
    public List<string> PoolingInstances { get; } = [];

    public Task<IReadOnlyList<string>> SteerPoolsAsync(ConsoleCommandKind action, string? instance, CancellationToken cancellationToken)
    {
        Steered.Add((action, instance));
        return Task.FromResult<IReadOnlyList<string>>([.. PoolingInstances.Where(name => instance is null || name == instance)]);
    }

    public int Reloads { get; private set; }

    public QueryStatistics Statistics { get; } = new(100);

    public ConfigSnapshot? Current => new(1, Config, InterceptorPipelines.Fixed(_ => InstanceInterceptors.None, Plugins), new Dictionary<string, SessionEnvironment>());

    /// <summary>The plugins the snapshot reports as loaded; none unless the test sets them.</summary>
    public List<LoadedPlugin> Plugins { get; } = [];

    /// <summary>The interceptors new sessions of each instance get, by instance name; none unless the test sets them.</summary>
    public Dictionary<string, InstanceInterceptors> Interceptors { get; } = [];

    public Task<ReloadResult> ReloadAsync(CancellationToken cancellationToken)
    {
        Reloads++;
        return Task.FromResult(NextReload);
    }

    /// <summary>The rules in force, by instance name; none unless the test sets them.</summary>
    public Dictionary<string, RuleSet> Rules { get; } = [];

    public IReadOnlyList<ConsoleInstance> Instances() =>
        [.. Config.Instances.Select(instance => new ConsoleInstance(instance, [$"{instance.Listen.Host}:{instance.Listen.Port}"], Rules.GetValueOrDefault(instance.Listen.Name) ?? RuleSet.Empty,
            Interceptors.GetValueOrDefault(instance.Listen.Name) ?? InstanceInterceptors.None))];

    public IReadOnlyList<SessionView> Sessions() => SessionList;

    /// <summary>The pools SHOW POOLS lists; none unless the test adds them.</summary>
    public List<PoolView> PoolList { get; } = [];

    public IReadOnlyList<PoolView> Pools() => PoolList;

    public bool Kill(long sessionId)
    {
        Killed.Add(sessionId);
        return SessionList.Exists(s => s.Id == sessionId);
    }

    public Task<CancelOutcome> CancelAsync(long sessionId)
    {
        Cancelled.Add(sessionId);
        return Task.FromResult(SessionList.Exists(s => s.Id == sessionId) ? NextCancel : CancelOutcome.NoSuchSession);
    }

    public void RequestStop(bool safe) => Stops.Add(safe);

    public ConsoleExecutor Executor() => new(this, NullLogger.Instance, 1, "ops");

    public static SessionView Session(long id, SessionState state, string instance = "proxy") =>
        new(id, instance, "127.0.0.1:50000", "app", "sales", "report", ClientTls: false, ServerTls: true, state, null, null, new DateTimeOffset(2026, 1, 2, 3, 4, 5, 678, TimeSpan.Zero), 100, 2000);
}

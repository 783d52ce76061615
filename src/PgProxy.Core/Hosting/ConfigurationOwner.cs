using Microsoft.Extensions.Logging;
using PgProxy.Core.Admin;
using PgProxy.Core.Rules;
using PgProxy.Core.Statistics;
using PgProxy.Sql;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Sessions;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Hosting;

/// <summary>
/// The one owner of the running configuration. It loads a configuration, validates it, builds a whole snapshot
/// (instances, TLS material, interceptor pipelines), readies the listeners, and swaps the snapshot in at once. The
/// first load fails fast; a reload that fails anywhere logs every error and keeps the running snapshot. Reloads run
/// one at a time, whoever asks for them (SIGHUP, an admin command).
/// </summary>
public sealed class ConfigurationOwner : IDisposable
{
    private readonly ConfigurationSource source;
    private readonly ILoggerFactory loggerFactory;
    private readonly ILogger logger;
    private readonly ProxyMetrics metrics;
    private readonly QueryShapes shapes = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, LiveRules> liveRules = new(StringComparer.Ordinal);

    // Each pooling instance's pools, kept across reloads (their connections outlive snapshots).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Pooling.InstancePools> pools = new(StringComparer.Ordinal);
    private readonly ISnapshotTarget target;
    private readonly SemaphoreSlim gate = new(1, 1);
    private ConfigSnapshot? current;
    private bool stopped;

    /// <summary>Per-query statistics: kept across reloads (a reload may change their capacity).</summary>
    internal QueryStatistics Statistics { get; } = new(new StatsConfig().MaxQueries);

    /// <summary>The query log's queue and writer: kept across reloads, which change its settings.</summary>
    internal QueryLog QueryLog { get; }

    internal ConfigurationOwner(ConfigurationSource source, ILoggerFactory loggerFactory, ProxyMetrics metrics, ISnapshotTarget target)
    {
        this.source = source;
        this.loggerFactory = loggerFactory;
        this.metrics = metrics;
        this.target = target;
        logger = loggerFactory.CreateLogger("PgProxy.Configuration");
        QueryLog = new QueryLog(loggerFactory);
        metrics.ObserveStatistics(() => Statistics.Evictions, () => QueryLog.Dropped);
        metrics.ObservePools(() => Pools.SelectMany(instance => instance.All.Select(pool => (pool.Key.Instance, pool.Key.User, pool.Key.Database, pool.Counts))));
    }

    /// <summary>The snapshot new sessions get; null before the first load.</summary>
    public ConfigSnapshot? Current => Volatile.Read(ref current);

    /// <summary>
    /// Reads the configuration again and, if all of it loads, validates, builds and binds, makes it the running one:
    /// new sessions get it, open sessions keep theirs. Otherwise nothing changes and the result lists every error.
    /// </summary>
    public async Task<ReloadResult> ReloadAsync(CancellationToken cancellationToken = default)
    {
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ConfigSnapshot? running = current;
            if (running is null || stopped)
            {
                return Refused(running, [running is null ? "PgProxy has not started" : "PgProxy is stopping"]);
            }

            var errors = new List<string>();
            ProxyConfig? next = Load(errors);
            if (next is null)
            {
                return Refused(running, errors);
            }

            ConfigSnapshot? built = Build(next, running.Generation + 1, errors);
            foreach (IReloadableSettings reloadable in source.Reloadables)
            {
                errors.AddRange(reloadable.Check(next));
            }

            if (built is null || errors.Count > 0)
            {
                DisposePipelines(built, running);
                return Refused(running, errors);
            }

            IListenerChange change = await PrepareAsync(built, running, errors, cancellationToken).ConfigureAwait(false);
            if (errors.Count > 0)
            {
                await change.DisposeAsync().ConfigureAwait(false);
                DisposePipelines(built, running);
                return Refused(running, errors);
            }

            // Logging first, so the lines about the new snapshot already follow its level and files.
            foreach (IReloadableSettings reloadable in source.Reloadables)
            {
                await reloadable.ApplyAsync(next, cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref current, built);
            SwapRules(running, built);
            await change.CommitAsync().ConfigureAwait(false);
            await change.DisposeAsync().ConfigureAwait(false);

            // Unloads the old plugins once the sessions still holding their interceptors end.
            DisposePipelines(running, built);
            IReadOnlyList<string> changes = ConfigChanges.Describe(running.Config, next);
            foreach (string line in changes)
            {
                ConfigurationLog.ReloadChange(logger, line);
            }

            foreach (string setting in ReloadResult.NeedsRestart)
            {
                ConfigurationLog.ReloadNeedsRestart(logger, setting);
            }

            // Counted before it is logged, so whoever reads the log line reads the counter too.
            metrics.Reloaded(applied: true);
            ConfigurationLog.Reloaded(logger, built.Generation, next.Instances.Count, built.Pipelines.Plugins.Count);
            return new ReloadResult { Changes = changes, Generation = built.Generation };
        }
        finally
        {
            gate.Release();
        }
    }

    public void Dispose()
    {
        Volatile.Read(ref current)?.Pipelines.Dispose();
        gate.Dispose();
    }

    /// <summary>The first load: builds and binds the initial configuration, or throws with every problem.</summary>
    /// <exception cref="StartupException">Something in the configuration cannot run; the message lists every problem, one per line.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the listeners started.</exception>
    internal async Task StartAsync(CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (current is not null)
            {
                throw new InvalidOperationException("the configuration was loaded already");
            }

            var errors = new List<string>();
            ConfigSnapshot first = Build(source.Initial, 1, errors)
                ?? throw new StartupException(ProxyServer.CheckSecurityFiles(source.Initial).Count > 0 ? StartupFailure.Files : StartupFailure.Plugins, errors);
            IListenerChange change = await PrepareAsync(first, null, errors, cancellationToken).ConfigureAwait(false);
            await using (change.ConfigureAwait(false))
            {
                if (errors.Count > 0)
                {
                    first.Pipelines.Dispose();
                    throw new StartupException(StartupFailure.Listen, errors);
                }

                // A stop signal while plugins compiled: the bound addresses close unused, and nothing is announced.
                if (cancellationToken.IsCancellationRequested)
                {
                    first.Pipelines.Dispose();
                    cancellationToken.ThrowIfCancellationRequested();
                }

                Volatile.Write(ref current, first);
                SwapRules(null, first);
                await change.CommitAsync().ConfigureAwait(false);
                metrics.ConfigurationLoaded();
            }
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Gives the pooling instances of <paramref name="next"/> their new environment, and retires the pools of instances
    /// that no longer pool (or are gone): their idle connections close now, lent ones as they come back.
    /// </summary>
    private void SwapPools(ConfigSnapshot next)
    {
        foreach ((string name, Sessions.SessionEnvironment environment) in next.Environments)
        {
            environment.Pools?.Use(environment);
        }

        foreach (string name in pools.Keys)
        {
            if (!next.Environments.TryGetValue(name, out Sessions.SessionEnvironment? environment) || environment.Pools is null)
            {
                if (pools.TryRemove(name, out Pooling.InstancePools? retired))
                {
                    _ = retired.DisposeAsync().AsTask();
                }
            }
        }
    }

    /// <summary>Every pooling instance's pools now, for the console and metrics.</summary>
    internal IEnumerable<Pooling.InstancePools> Pools => pools.Values;

    /// <summary>Closes every pool's connections: at shutdown, once the sessions have ended.</summary>
    internal async ValueTask DisposePoolsAsync()
    {
        foreach (string name in pools.Keys)
        {
            if (pools.TryRemove(name, out Pooling.InstancePools? retired))
            {
                await retired.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Puts the rules of <paramref name="next"/> in force for every session of its instances, open ones included, and
    /// writes the counters of the rules they replace to the intercept log.
    /// </summary>
    private void SwapRules(ConfigSnapshot? running, ConfigSnapshot next)
    {
        SwapPools(next);
        ILogger interceptLogger = loggerFactory.CreateLogger(InterceptLog.Category);
        foreach ((string name, Sessions.SessionEnvironment environment) in next.Environments)
        {
            RuleSet replaced = environment.LiveRules.Current;
            environment.LiveRules.Current = environment.Rules;
            if (running is not null)
            {
                replaced.WriteCounters(interceptLogger, name);
            }
        }

        // An instance the new snapshot removed has no new sessions; its open ones keep the last rules it had.
        if (running is not null)
        {
            foreach ((string name, Sessions.SessionEnvironment environment) in running.Environments)
            {
                if (!next.Environments.ContainsKey(name))
                {
                    environment.LiveRules.Current.WriteCounters(interceptLogger, name);
                }
            }
        }
    }

    /// <summary>Refuses every later reload (the server is stopping) and returns the snapshot that ran last.</summary>
    internal async Task<ConfigSnapshot?> StopAsync()
    {
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            stopped = true;
            if (current is not null)
            {
                ILogger interceptLogger = loggerFactory.CreateLogger(InterceptLog.Category);
                foreach ((string name, Sessions.SessionEnvironment environment) in current.Environments)
                {
                    environment.LiveRules.Current.WriteCounters(interceptLogger, name);
                }
            }

            return current;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Builds a snapshot of <paramref name="config"/>: every instance's TLS material and interceptors, and the session
    /// environment made of them. Null, with every problem added to <paramref name="errors"/>, when any part fails.
    /// </summary>
    internal ConfigSnapshot? Build(ProxyConfig config, long generation, List<string> errors)
    {
        int before = errors.Count;
        var security = new Dictionary<string, InstanceSecurity>(StringComparer.Ordinal);
        foreach (InstanceConfig instance in config.Instances)
        {
            try
            {
                security[instance.Listen.Name] = InstanceSecurity.Load(instance);
            }
            catch (SecurityMaterialException e)
            {
                errors.Add(e.Message);
            }
        }

        AdminConsole? console = LoadConsole(config, errors);
        SessionEnvironment? consoleEnvironment = ConsoleEnvironment(console, errors);
        InterceptorPipelines? pipelines = source.Interceptors(config, loggerFactory, errors);
        if (pipelines is null || errors.Count > before)
        {
            pipelines?.Dispose();
            return null;
        }

        ILogger interceptLogger = loggerFactory.CreateLogger(InterceptLog.Category);
        var rules = new Dictionary<string, RuleSet>(StringComparer.Ordinal);
        for (int i = 0; i < config.Instances.Count; i++)
        {
            InstanceConfig instance = config.Instances[i];
            if (instance.Rules.Count > 0 && !PostgresParser.IsAvailable)
            {
                errors.Add($"instances[{i}].rules: rules need libpg_query, which is not installed ({PostgresParser.InstallHint})");
            }

            // Without the parser no statement could be checked for computations over a masked column: refuse to run
            // masks that would be half there.
            if (instance.Masks.Count > 0 && !PostgresParser.IsAvailable)
            {
                errors.Add($"instances[{i}].masks: masks need libpg_query, which is not installed ({PostgresParser.InstallHint})");
            }

            rules[instance.Listen.Name] = (instance.Rules.Count > 0 || instance.Masks.Count > 0) && PostgresParser.IsAvailable
                ? RuleSet.Build(instance.Rules, instance.Masks, config.Settings)
                : RuleSet.Empty;
        }

        if (errors.Count > before)
        {
            pipelines.Dispose();
            return null;
        }

        bool keepStatistics = config.Stats.Queries && PostgresParser.IsAvailable;
        bool logQueries = config.QueryLog is not null && PostgresParser.IsAvailable;
        Statistics.Capacity = config.Stats.MaxQueries;
        var environments = config.Instances.ToDictionary(
            instance => instance.Listen.Name,
            instance => new SessionEnvironment(
                instance,
                loggerFactory.CreateLogger($"PgProxy.Instance.{instance.Listen.Name}"),
                interceptLogger,
                metrics,
                pipelines.For(instance, config.Settings),
                security[instance.Listen.Name])
            {
                Console = console,
                Statistics = keepStatistics ? Statistics : null,
                QueryLog = logQueries ? QueryLog : null,
                QueryLogSettings = logQueries ? config.QueryLog : null,
                Rules = rules[instance.Listen.Name],
                LiveRules = liveRules.GetOrAdd(instance.Listen.Name, static _ => new LiveRules()),
                Shapes = keepStatistics || logQueries ? shapes : null,
            },
            StringComparer.Ordinal);
        foreach (Sessions.SessionEnvironment environment in environments.Values)
        {
            if (environment.Instance.Pool.Pools)
            {
                environment.Pools = pools.GetOrAdd(environment.InstanceName, static (_, first) => new Pooling.InstancePools(first), environment);
            }
        }

        return new ConfigSnapshot(generation, config, pipelines, environments, consoleEnvironment);
    }

    /// <summary>
    /// The console of <paramref name="config"/> (its auth-file read now, so a broken one fails the load like any other
    /// file); null without an <c>admin</c> section, or when no proxy runs it (an owner tested without listeners).
    /// </summary>
    private AdminConsole? LoadConsole(ProxyConfig config, List<string> errors)
    {
        if (config.Admin is not { } admin || target is not IConsoleHost host)
        {
            return null;
        }

        try
        {
            return AdminConsole.Load(admin, host);
        }
        catch (SecurityMaterialException e)
        {
            errors.Add(e.Message);
            return null;
        }
    }

    /// <summary>
    /// The environment of the console's own listener: an instance of its own that relays nowhere, with <c>admin.tls</c>
    /// and no interceptors. Null without <c>admin.listen</c>.
    /// </summary>
    private SessionEnvironment? ConsoleEnvironment(AdminConsole? console, List<string> errors)
    {
        if (console?.Config is not { Listen: { } listen } admin)
        {
            return null;
        }

        InstanceSecurity security;
        try
        {
            security = InstanceSecurity.ForConsole(admin.Tls);
        }
        catch (SecurityMaterialException e)
        {
            errors.Add(e.Message);
            return null;
        }

        var instance = new InstanceConfig(listen, new EndpointConfig("none", "none", 0), InterceptConfig.None, InstanceLimits.Default) { ListenTls = admin.Tls };
        return new SessionEnvironment(instance, loggerFactory.CreateLogger("PgProxy.Admin"), loggerFactory.CreateLogger(InterceptLog.Category), metrics, InstanceInterceptors.None, security)
        {
            Console = console,
            ConsoleOnly = true,
        };
    }

    private static void DisposePipelines(ConfigSnapshot? snapshot, ConfigSnapshot? other)
    {
        // A builder may hand back the same pipelines for every configuration; those stay while either snapshot runs.
        if (snapshot is not null && !ReferenceEquals(snapshot.Pipelines, other?.Pipelines))
        {
            snapshot.Pipelines.Dispose();
        }
    }

    /// <summary>Readies the listeners for <paramref name="next"/>; if that throws (cancelled), its pipelines are unloaded again.</summary>
    private async Task<IListenerChange> PrepareAsync(ConfigSnapshot next, ConfigSnapshot? running, List<string> errors, CancellationToken cancellationToken)
    {
        try
        {
            return await target.PrepareAsync(next, errors, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            DisposePipelines(next, running);
            throw;
        }
    }

    private ProxyConfig? Load(List<string> errors)
    {
        if (source.Reload is null)
        {
            return source.Initial;
        }

        try
        {
            return source.Reload();
        }
        catch (ConfigException e)
        {
            // One line per error, each FILE:LINE:COLUMN: KEY: message.
            errors.AddRange(e.Message.Split('\n'));
            return null;
        }
    }

    private ReloadResult Refused(ConfigSnapshot? running, IReadOnlyList<string> errors)
    {
        metrics.Reloaded(applied: false);
        ConfigurationLog.ReloadFailed(logger, string.Join(Environment.NewLine, errors));
        return new ReloadResult { Errors = errors, Generation = running?.Generation ?? 0 };
    }
}

/// <summary>What the owner swaps snapshots into: the listeners. Kept behind an interface so the owner can be tested without sockets.</summary>
internal interface ISnapshotTarget
{
    /// <summary>
    /// Binds every address <paramref name="next"/> listens on that nothing listens on yet, without accepting on it or
    /// changing what runs; a problem (an address in use) is added to <paramref name="errors"/>, naming the instance.
    /// </summary>
    Task<IListenerChange> PrepareAsync(ConfigSnapshot next, ICollection<string> errors, CancellationToken cancellationToken);
}

/// <summary>A prepared change of the listeners: committed, or disposed unused, which closes what it bound.</summary>
internal interface IListenerChange : IAsyncDisposable
{
    /// <summary>Gives every listener its environment of the new snapshot, starts the new ones, stops accepting on the retired ones.</summary>
    Task CommitAsync();
}

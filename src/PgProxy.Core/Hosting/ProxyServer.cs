using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Listening;
using PgProxy.Core.Sessions;
using PgProxy.Core.Statistics;
using PgProxy.Core.Tls;
using PgProxy.Core.Transport;

namespace PgProxy.Core.Hosting;

/// <summary>
/// Runs every instance of a configuration at once. Usable as a library: embed a proxy in a process or a test,
/// start it, read back the bound addresses, reload it, stop it. Its <see cref="Configuration"/> owns what runs.
/// </summary>
public sealed class ProxyServer : IAsyncDisposable, ISnapshotTarget, IConsoleHost
{
    private readonly ILogger logger;
    private readonly ProxyMetrics metrics;
    private readonly bool ownsMetrics;
    private readonly SessionRegistry sessions = new();
    private readonly TaskCompletionSource stopBegun = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource stopEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private InstanceListener[] listeners = [];
    private InstanceListener? consoleListener;
    private int state; // 0 new, 1 started, 2 stopped, 3 failed to start
    private int inheriting;

    /// <param name="config">What to run; a reload builds it again (its TLS files afresh) with the same interceptors.</param>
    /// <param name="loggerFactory">Where the general log (and the PgProxy.Intercept category, the intercept log) goes.</param>
    /// <param name="metrics">Instruments to record into; a private set when null.</param>
    /// <param name="interceptors">The resolved interceptors of each instance; none when null.</param>
    public ProxyServer(ProxyConfig config, ILoggerFactory loggerFactory, ProxyMetrics? metrics = null, Func<InstanceConfig, InstanceInterceptors>? interceptors = null)
        : this(new ConfigurationSource(config) { Interceptors = Fixed(interceptors) }, loggerFactory, metrics)
    {
    }

    /// <param name="source">The configuration to start with, how to read it again, and what else a reload reconfigures.</param>
    /// <param name="loggerFactory">Where the general log (and the PgProxy.Intercept category, the intercept log) goes.</param>
    /// <param name="metrics">Instruments to record into; a private set when null.</param>
    public ProxyServer(ConfigurationSource source, ILoggerFactory loggerFactory, ProxyMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        logger = loggerFactory.CreateLogger("PgProxy.Server");
        ownsMetrics = metrics is null;
        this.metrics = metrics ?? new ProxyMetrics();
        Configuration = new ConfigurationOwner(source, loggerFactory, this.metrics, this);
        this.metrics.ObserveSessionStates(SessionStates);
    }

    /// <summary>
    /// Where the first start gets listening sockets instead of binding them (<c>pgproxy --takeover</c>): called once,
    /// when the configuration and its plugins are built and the listeners are about to bind. Null: every listener binds.
    /// </summary>
    public Func<CancellationToken, Task<InheritedListeners>>? Inherit { get; init; }

    /// <summary>The owner of the running configuration: its current snapshot, and <see cref="ConfigurationOwner.ReloadAsync"/>.</summary>
    public ConfigurationOwner Configuration { get; }

    /// <summary>Client sessions open now, on every instance (those of instances a reload removed included).</summary>
    public int ActiveSessions => sessions.Count;

    /// <summary>
    /// Completes when a stop begins, whoever asked: <see cref="StopAsync(CancellationToken)"/>, or the admin console's
    /// SHUTDOWN. A host waits on it besides its signals, then awaits <see cref="StopAsync(CancellationToken)"/>, which
    /// joins the stop in progress.
    /// </summary>
    public Task Stopping => stopBegun.Task;

    /// <summary>
    /// How many epoll event loops sessions relay on (0: .NET's socket engine), from <c>PGPROXY_EVENT_LOOPS</c> or the
    /// default; a malformed value is described in <paramref name="problem"/>. Read at start only.
    /// </summary>
    public static int EventLoopCount(out string? problem) => EventLoops.ConfiguredCount(out problem);

    /// <summary>
    /// Loads the configuration (TLS files, interceptors), binds every instance's listening address, then starts
    /// accepting. Fails with every problem if any part cannot run.
    /// </summary>
    /// <exception cref="StartupException">A part cannot run; its <see cref="StartupException.Failure"/> says which stage failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before it started accepting.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref state, 1, 0) != 0)
        {
            throw new InvalidOperationException("the proxy server was started already");
        }

        try
        {
            EventLoops.StartNow();
            await Configuration.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Nothing runs: disposing it closes what it holds without logging a shutdown that never began.
            Volatile.Write(ref state, 3);
            throw;
        }
    }

    /// <summary>The addresses an instance listens on, port 0 resolved to the port chosen.</summary>
    public IReadOnlyList<IPEndPoint> GetEndpoints(string instanceName) =>
        Volatile.Read(ref listeners).FirstOrDefault(l => l.InstanceName == instanceName)?.Endpoints
        ?? throw new ArgumentException($"no instance named \"{instanceName}\"", nameof(instanceName));

    /// <summary>
    /// Every listening socket by the key of its listener (<see cref="InheritedListeners.KeyOf"/>): the instances' and the
    /// admin console's own, for a hand-over to a process that takes over.
    /// </summary>
    public IReadOnlyList<(string Key, Socket Socket)> ListeningSockets()
    {
        var all = new List<(string, Socket)>();
        foreach (InstanceListener listener in Volatile.Read(ref listeners))
        {
            all.AddRange(listener.Sockets.Select(socket => (listener.Key, socket)));
        }

        if (Volatile.Read(ref consoleListener) is { } console)
        {
            all.AddRange(console.Sockets.Select(socket => (console.Key, socket)));
        }

        return all;
    }

    /// <summary>
    /// Stops accepting on every listening socket after a process that took over accepts on them: the connections
    /// queued on them stay queued for it. Sessions open here go on; <see cref="StopAsync(CancellationToken)"/> ends them.
    /// </summary>
    public async Task HandOffListenersAsync()
    {
        Volatile.Write(ref handedOff, true);
        foreach (InstanceListener listener in Volatile.Read(ref listeners))
        {
            await listener.HandOffAsync().ConfigureAwait(false);
        }

        if (Volatile.Read(ref consoleListener) is { } console)
        {
            await console.HandOffAsync().ConfigureAwait(false);
        }
    }

    // After a hand-over, the stop ends an idle session only after its next request is answered: a client that connected
    // here just before the hand-over is served its first query, not told 57P01 before it.
    private bool handedOff;

    /// <summary>The addresses the admin console's own listener (<c>admin.listen</c>) is bound to; empty when it has none.</summary>
    public IReadOnlyList<IPEndPoint> GetConsoleEndpoints() => Volatile.Read(ref consoleListener)?.Endpoints ?? [];

    /// <summary>
    /// Reads every certificate, key, CA and auth file the configuration names, as start-up would; returns one line
    /// per problem, each naming the instance, the key and the file. Empty when all of them are usable.
    /// </summary>
    public static IReadOnlyList<string> CheckSecurityFiles(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var problems = new List<string>();
        foreach (InstanceConfig instance in config.Instances)
        {
            try
            {
                InstanceSecurity.Load(instance);
            }
            catch (SecurityMaterialException e)
            {
                problems.Add(e.Message);
            }
        }

        if (config.Admin is { } admin)
        {
            try
            {
                AdminConsole.CheckFiles(admin);
            }
            catch (SecurityMaterialException e)
            {
                problems.Add(e.Message);
            }
        }

        return problems;
    }

    /// <summary>
    /// Stops accepting, ends each session at its next idle point (the client gets 57P01, as from a PostgreSQL
    /// shutdown), and after <c>shutdown-timeout</c> ends the sessions still busy. No reload applies after this begins.
    /// </summary>
    /// <remarks>A second call, or a call while the console's SHUTDOWN runs, waits for the stop in progress.</remarks>
    public Task StopAsync(CancellationToken cancellationToken = default) => StopAsync(immediate: false, cancellationToken);

    /// <summary>The stop of <see cref="StopAsync(CancellationToken)"/>; <paramref name="immediate"/> ends busy sessions at once, as a shutdown-timeout of 0.</summary>
    private async Task StopAsync(bool immediate, CancellationToken cancellationToken)
    {
        int previous = Interlocked.CompareExchange(ref state, 2, 1);
        if (previous != 1)
        {
            if (previous == 2)
            {
                await stopEnded.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        stopBegun.TrySetResult();
        try
        {
            await StopSessionsAsync(immediate, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            stopEnded.TrySetResult();
        }
    }

    private async Task StopSessionsAsync(bool immediate, CancellationToken cancellationToken)
    {
        ConfigSnapshot? last = await Configuration.StopAsync().ConfigureAwait(false);
        foreach (InstanceListener listener in Volatile.Read(ref listeners))
        {
            await listener.StopAcceptingAsync().ConfigureAwait(false);
        }

        if (Volatile.Read(ref consoleListener) is { } console)
        {
            await console.StopAcceptingAsync().ConfigureAwait(false);
        }

        TimeSpan timeout = immediate ? TimeSpan.Zero : (last?.Config.Settings ?? new ProxySettings()).ShutdownTimeout;
        Log.ShuttingDown(logger, sessions.Count, timeout);
        foreach (ProxySession session in sessions.Snapshot())
        {
            // The same 57P01 either way; only when it is sent differs.
            if (immediate)
            {
                session.Abort();
            }
            else
            {
                session.RequestShutdown(afterNextRequest: Volatile.Read(ref handedOff));
            }
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await sessions.WhenEmptyAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Log.ShutdownForced(logger, sessions.Count);
            foreach (ProxySession session in sessions.Snapshot())
            {
                session.Abort();
            }

            await sessions.WhenEmptyAsync(CancellationToken.None).ConfigureAwait(false);
        }

        Log.ShutdownComplete(logger);
    }

    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref state) == 1)
        {
            await StopAsync().ConfigureAwait(false);
        }

        foreach (InstanceListener listener in Volatile.Read(ref listeners))
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        if (Volatile.Read(ref consoleListener) is { } console)
        {
            await console.DisposeAsync().ConfigureAwait(false);
        }

        await Configuration.DisposePoolsAsync().ConfigureAwait(false);
        await Configuration.QueryLog.DisposeAsync().ConfigureAwait(false); // what sessions queued reaches the file
        Configuration.Dispose();
        if (ownsMetrics)
        {
            metrics.Dispose();
        }
    }

    /// <summary>
    /// Matches each instance of the next snapshot to a running listener on the same address (port 0: of the same
    /// instance), and binds a new listener for the rest; the listeners left over are retired at commit.
    /// </summary>
    async Task<IListenerChange> ISnapshotTarget.PrepareAsync(ConfigSnapshot next, ICollection<string> errors, CancellationToken cancellationToken)
    {
        InstanceListener[] running = Volatile.Read(ref listeners);
        var change = new ListenerChange(this);
        InheritedListeners? inherited = null;
        if (Inherit is { } inherit && Interlocked.Exchange(ref inheriting, 1) == 0)
        {
            inherited = await inherit(cancellationToken).ConfigureAwait(false);
            change.Inherited = inherited;
        }

        try
        {
            foreach (InstanceConfig instance in next.Config.Instances)
            {
                SessionEnvironment environment = next.Environments[instance.Listen.Name];
                InstanceListener? same = running.FirstOrDefault(l =>
                    !change.Claims(l)
                    && ConfigChanges.SameAddress(l.Listen, instance.Listen)
                    && (instance.Listen.Port != 0 || l.InstanceName == instance.Listen.Name));
                if (same is not null)
                {
                    change.Keep(same, environment);
                    continue;
                }

                InstanceSessionCount? count = running.FirstOrDefault(l => l.InstanceName == instance.Listen.Name)?.Count;
                var listener = new InstanceListener(environment, sessions, count);
                change.Add(listener);
                try
                {
                    await listener.BindAsync(inherited, cancellationToken).ConfigureAwait(false);
                }
                catch (InvalidOperationException e)
                {
                    errors.Add(e.Message);
                }
            }

            change.Retire(running.Where(l => !change.Claims(l)));
            await PrepareConsoleAsync(next, change, inherited, errors, cancellationToken).ConfigureAwait(false);
            return change;
        }
        catch
        {
            await change.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Keeps the console's own listener when <c>admin.listen</c> stays at the same address (port 0: stays 0), binds a new
    /// one when it moves or appears, and retires the old one when it moves or goes.
    /// </summary>
    private async Task PrepareConsoleAsync(ConfigSnapshot next, ListenerChange change, InheritedListeners? inherited, ICollection<string> errors, CancellationToken cancellationToken)
    {
        InstanceListener? running = Volatile.Read(ref consoleListener);
        SessionEnvironment? environment = next.ConsoleEnvironment;
        if (environment is not null && running is not null && ConfigChanges.SameAddress(running.Listen, environment.Instance.Listen))
        {
            change.KeepConsole(running, environment);
            return;
        }

        change.RetireConsole(running);
        if (environment is null)
        {
            return;
        }

        var listener = new InstanceListener(environment, sessions);
        change.AddConsole(listener);
        try
        {
            await listener.BindAsync(inherited, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            errors.Add(e.Message);
        }
    }

    /// <summary>
    /// The relayed sessions open now by instance and state, as SHOW SESSIONS names the states (console sessions are not
    /// relayed and not counted): the source of the sessions-by-state gauge, read at each scrape.
    /// </summary>
    private IEnumerable<(string Listen, string State, long Count)> SessionStates() =>
        sessions.Snapshot()
            .Where(session => !session.IsConsole)
            .GroupBy(session => (session.InstanceName, session.State))
            .Select(group => (group.Key.InstanceName, ConsoleExecutor.StateName(group.Key.State).Replace(' ', '_'), (long)group.Count()));

    ConfigSnapshot? IConsoleHost.Current => Configuration.Current;

    QueryStatistics IConsoleHost.Statistics => Configuration.Statistics;

    Task<ReloadResult> IConsoleHost.ReloadAsync(CancellationToken cancellationToken) => Configuration.ReloadAsync(cancellationToken);

    IReadOnlyList<ConsoleInstance> IConsoleHost.Instances() =>
        [.. Volatile.Read(ref listeners).Select(listener => new ConsoleInstance(
            listener.Environment.Instance,
            [.. listener.Endpoints.Select(endpoint => endpoint.ToString())],
            listener.Environment.LiveRules.Current,
            listener.Environment.Interceptors))];

    IReadOnlyList<PoolView> IConsoleHost.Pools() =>
        [.. Configuration.Pools.SelectMany(instance => instance.All).Select(pool => new PoolView(pool.Key.Instance, pool.Key.User, pool.Key.Database, pool.Counts))];

    async Task<IReadOnlyList<string>> IConsoleHost.SteerPoolsAsync(ConsoleCommandKind action, string? instance, CancellationToken cancellationToken)
    {
        Pooling.InstancePools[] chosen = [.. Configuration.Pools.Where(pools => instance is null || string.Equals(pools.InstanceName, instance, StringComparison.Ordinal))];
        await Task.WhenAll(chosen.Select(pools => action switch
        {
            ConsoleCommandKind.Pause => pools.PauseAsync(cancellationToken),
            ConsoleCommandKind.Resume => pools.ResumeAsync(),
            _ => pools.ReconnectAsync(),
        })).ConfigureAwait(false);
        return [.. chosen.Select(pools => pools.InstanceName)];
    }

    IReadOnlyList<SessionView> IConsoleHost.Sessions() => [.. sessions.Snapshot().Select(session => session.Describe())];

    bool IConsoleHost.Kill(long sessionId)
    {
        if (sessions.Find(sessionId) is not { } session)
        {
            return false;
        }

        session.Kill();
        return true;
    }

    Task<CancelOutcome> IConsoleHost.CancelAsync(long sessionId) =>
        sessions.Find(sessionId) is { } session ? session.CancelAsync() : Task.FromResult(CancelOutcome.NoSuchSession);

    void IConsoleHost.RequestStop(bool safe) =>
        _ = Task.Run(async () =>
        {
            try
            {
                await StopAsync(immediate: !safe, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                AdminLog.ShutdownFailed(logger, e);
            }
        });

    private static InterceptorPipelineBuilder Fixed(Func<InstanceConfig, InstanceInterceptors>? interceptors)
    {
        InterceptorPipelines pipelines = interceptors is null ? InterceptorPipelines.None : InterceptorPipelines.Fixed(interceptors);
        return (_, _, _) => pipelines;
    }

    /// <summary>The listeners a snapshot keeps, opens and retires.</summary>
    private sealed class ListenerChange(ProxyServer server) : IListenerChange
    {
        private readonly List<(InstanceListener Listener, SessionEnvironment Environment)> kept = [];
        private readonly List<InstanceListener> added = [];
        private readonly List<InstanceListener> retired = [];
        private (InstanceListener Listener, SessionEnvironment Environment)? keptConsole;
        private InstanceListener? addedConsole;
        private bool committed;

        /// <summary>The sockets handed over for this start; those no listener took are closed with the change.</summary>
        public InheritedListeners? Inherited { get; set; }

        public bool Claims(InstanceListener listener) => kept.Exists(k => k.Listener == listener);

        public void Keep(InstanceListener listener, SessionEnvironment environment) => kept.Add((listener, environment));

        public void Add(InstanceListener listener) => added.Add(listener);

        public void Retire(IEnumerable<InstanceListener> listeners) => retired.AddRange(listeners);

        public void KeepConsole(InstanceListener listener, SessionEnvironment environment) => keptConsole = (listener, environment);

        public void AddConsole(InstanceListener listener) => addedConsole = listener;

        public void RetireConsole(InstanceListener? listener)
        {
            if (listener is not null)
            {
                retired.Add(listener);
            }
        }

        public async Task CommitAsync()
        {
            committed = true;
            Inherited?.Dispose();
            foreach ((InstanceListener listener, SessionEnvironment environment) in kept)
            {
                listener.Environment = environment;
            }

            foreach (InstanceListener listener in added)
            {
                listener.StartAccepting();
            }

            Volatile.Write(ref server.listeners, [.. kept.Select(k => k.Listener), .. added]);
            if (keptConsole is { } console)
            {
                console.Listener.Environment = console.Environment;
            }

            addedConsole?.StartAccepting();
            Volatile.Write(ref server.consoleListener, keptConsole?.Listener ?? addedConsole);

            // A retired address stops taking connections; the sessions it took go on, tracked by the server.
            foreach (InstanceListener listener in retired)
            {
                await listener.DisposeAsync().ConfigureAwait(false);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (committed)
            {
                return;
            }

            Inherited?.Dispose();
            foreach (InstanceListener listener in added)
            {
                await listener.DisposeAsync().ConfigureAwait(false);
            }

            if (addedConsole is not null)
            {
                await addedConsole.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}

using System.Net;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Listening;
using PgProxy.Core.Sessions;
using PgProxy.Core.Tls;

using PgProxy.Core.Transport;

namespace PgProxy.Core.Hosting;

/// <summary>
/// Runs every instance of a configuration at once. Usable as a library: embed a proxy in a process or a test,
/// start it, read back the bound addresses, stop it.
/// </summary>
public sealed class ProxyServer : IAsyncDisposable
{
    private readonly ProxyConfig config;
    private readonly Func<InstanceConfig, InstanceInterceptors> interceptors;
    private readonly ILoggerFactory loggerFactory;
    private readonly ILogger logger;
    private readonly ProxyMetrics metrics;
    private readonly bool ownsMetrics;
    private readonly SessionRegistry sessions = new();
    private readonly List<InstanceListener> listeners = [];
    private int state; // 0 new, 1 started, 2 stopped

    /// <param name="config">What to run.</param>
    /// <param name="loggerFactory">Where the general log (and the PgProxy.Intercept category, the intercept log) goes.</param>
    /// <param name="metrics">Instruments to record into; a private set when null.</param>
    /// <param name="interceptors">The resolved interceptors of each instance; none when null.</param>
    public ProxyServer(ProxyConfig config, ILoggerFactory loggerFactory, ProxyMetrics? metrics = null, Func<InstanceConfig, InstanceInterceptors>? interceptors = null)
    {
        this.interceptors = interceptors ?? (_ => InstanceInterceptors.None);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        this.config = config;
        this.loggerFactory = loggerFactory;
        logger = loggerFactory.CreateLogger("PgProxy.Server");
        ownsMetrics = metrics is null;
        this.metrics = metrics ?? new ProxyMetrics();
    }

    /// <summary>Client sessions open now, on every instance.</summary>
    public int ActiveSessions => sessions.Count;

    /// <summary>
    /// How many epoll event loops sessions relay on (0: .NET's socket engine), from <c>PGPROXY_EVENT_LOOPS</c> or the
    /// default; a malformed value is described in <paramref name="problem"/>.
    /// </summary>
    public static int EventLoopCount(out string? problem) => EventLoops.ConfiguredCount(out problem);

    /// <summary>Binds every instance's listening address, then starts accepting. Fails if any address cannot be bound.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref state, 1, 0) != 0)
        {
            throw new InvalidOperationException("the proxy server was started already");
        }

        try
        {
            foreach (InstanceConfig instance in config.Instances)
            {
                InstanceSecurity security;
                try
                {
                    security = InstanceSecurity.Load(instance);
                }
                catch (SecurityMaterialException e)
                {
                    throw new InvalidOperationException(e.Message, e);
                }

                var environment = new SessionEnvironment(
                    instance,
                    loggerFactory.CreateLogger($"PgProxy.Instance.{instance.Listen.Name}"),
                    loggerFactory.CreateLogger(InterceptLog.Category),
                    metrics,
                    interceptors(instance),
                    security);
                var listener = new InstanceListener(environment, sessions);
                listeners.Add(listener);
                await listener.BindAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            foreach (InstanceListener listener in listeners)
            {
                await listener.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }

        foreach (InstanceListener listener in listeners)
        {
            listener.StartAccepting();
        }
    }

    /// <summary>The addresses an instance listens on, port 0 resolved to the port chosen.</summary>
    public IReadOnlyList<IPEndPoint> GetEndpoints(string instanceName) =>
        listeners.FirstOrDefault(l => l.InstanceName == instanceName)?.Endpoints
        ?? throw new ArgumentException($"no instance named \"{instanceName}\"", nameof(instanceName));

    /// <summary>
    /// Gives new sessions of each running instance the interceptors <paramref name="interceptors"/> returns for its
    /// name (null leaves an instance as it is). Sessions already open keep the interceptors they started with.
    /// </summary>
    public void ReplaceInterceptors(Func<string, InstanceInterceptors?> interceptors)
    {
        ArgumentNullException.ThrowIfNull(interceptors);
        foreach (InstanceListener listener in listeners)
        {
            if (interceptors(listener.InstanceName) is { } replacement)
            {
                listener.Interceptors = replacement;
            }
        }
    }

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

        return problems;
    }

    /// <summary>
    /// Reads the certificates, keys and verifiers again (from <paramref name="next"/>'s settings for each running
    /// instance of the same name) and gives them to new sessions; open sessions keep theirs. All or nothing: if any
    /// file is unusable nothing changes, and the problems are returned.
    /// </summary>
    public IReadOnlyList<string> ReloadSecurity(ProxyConfig next)
    {
        ArgumentNullException.ThrowIfNull(next);
        var problems = new List<string>();
        var loaded = new List<(InstanceListener Listener, InstanceSecurity Security)>();
        foreach (InstanceListener listener in listeners)
        {
            InstanceConfig? instance = next.Instances.FirstOrDefault(i => i.Listen.Name == listener.InstanceName);
            if (instance is null)
            {
                continue;
            }

            try
            {
                // The redirect address is read at start only; the new TLS and auth settings apply to the running one.
                loaded.Add((listener, InstanceSecurity.Load(instance with { Redirect = listener.Redirect, Limits = listener.Limits })));
            }
            catch (SecurityMaterialException e)
            {
                problems.Add(e.Message);
            }
        }

        if (problems.Count == 0)
        {
            foreach ((InstanceListener listener, InstanceSecurity security) in loaded)
            {
                listener.Security = security;
                Log.SecurityReloaded(logger, listener.InstanceName);
            }
        }

        return problems;
    }

    /// <summary>
    /// Stops accepting, ends each session at its next idle point (the client gets 57P01, as from a PostgreSQL
    /// shutdown), and after <c>shutdown-timeout</c> ends the sessions still busy.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref state, 2) != 1)
        {
            return;
        }

        foreach (InstanceListener listener in listeners)
        {
            await listener.StopAcceptingAsync().ConfigureAwait(false);
        }

        TimeSpan timeout = config.Settings.ShutdownTimeout;
        Log.ShuttingDown(logger, sessions.Count, timeout);
        foreach (ProxySession session in sessions.Snapshot())
        {
            session.RequestShutdown();
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

        foreach (InstanceListener listener in listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        if (ownsMetrics)
        {
            metrics.Dispose();
        }
    }
}

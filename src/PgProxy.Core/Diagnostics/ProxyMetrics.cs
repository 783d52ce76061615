using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;
using System.Runtime.InteropServices;
using PgProxy.Core.Server;
using PgProxy.Protocol;

namespace PgProxy.Core.Diagnostics;

/// <summary>
/// The engine's instruments (meter "PgProxy"). Recorded per session or per statement, never per forwarded frame, so
/// metrics cost nothing on the forwarding path. Every per-instance measurement carries the tag <c>listen</c> (the
/// instance's <c>listen.name</c>); no tag takes a value a client chooses (no query text, no client address).
/// docs/operations.md lists every instrument under the name the Prometheus endpoint gives it.
/// </summary>
public sealed class ProxyMetrics : IDisposable
{
    public const string MeterName = "PgProxy";

    /// <summary>The tag naming the instance. Not "instance": Prometheus renames a scraped label of that name.</summary>
    internal const string ListenTag = "listen";

    /// <summary>
    /// Buckets of statement times (queries, transactions), in seconds: 50 µs to 60 s in 1–2.5–5 steps. A select by
    /// primary key through the proxy on one machine takes 100–300 µs, so the lowest buckets tell a fast query apart
    /// from one that waited; the highest catch reports and batch jobs.
    /// </summary>
    internal static readonly IReadOnlyList<double> StatementBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    /// <summary>
    /// Buckets of logins and upstream connects, in seconds: 250 µs (a plain TCP connect on one machine) to 30 s (past
    /// the default connect-timeout of 10 s, so a login waiting on a slow client is still seen).
    /// </summary>
    internal static readonly IReadOnlyList<double> ConnectBuckets =
        [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    /// <summary>Buckets of session lifetimes, in seconds: 10 ms (pgbench -C) to a day (an application's pool).</summary>
    internal static readonly IReadOnlyList<double> SessionBuckets =
        [0.01, 0.1, 1, 10, 60, 300, 900, 1800, 3600, 14400, 86400];

    private readonly Meter meter;
    private readonly Counter<long> sessionsOpened;
    private readonly Histogram<double> sessionDuration;
    private readonly Histogram<double> loginDuration;
    private readonly Histogram<double> upstreamConnectDuration;
    private readonly Counter<long> upstreamConnectFailures;
    private readonly Histogram<double> transactionDuration;
    private readonly Histogram<double> queryDuration;
    private readonly Counter<long> bytes;
    private readonly Counter<long> errors;
    private readonly Counter<long> rewrites;
    private readonly Counter<long> refusals;
    private readonly Counter<long> masks;
    private readonly Counter<long> pluginFailures;
    private readonly Counter<long> pluginTimeouts;
    private readonly Counter<long> reloads;
    private readonly Histogram<double> poolWait;

    // Gauges of what is open now are kept here and read at each collection, rather than added up by a listener, so
    // a listener that starts late (a reload that adds the metrics endpoint) still reads the right values.
    private readonly ConcurrentDictionary<string, InstanceGauges> gauges = new(StringComparer.Ordinal);
    private Func<IEnumerable<(string Listen, string State, long Count)>>? sessionStates;
    private Func<IEnumerable<(string Listen, string User, string Database, Pooling.PoolCounts Counts)>>? pools;
    private Func<long>? statisticsEvictions;
    private Func<long>? queryLogDropped;
    private long lastReloadUnixMilliseconds;
    private int lastReloadApplied = -1; // -1: no configuration loaded yet

    public ProxyMetrics(IMeterFactory? meterFactory = null)
    {
        meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        sessionsOpened = meter.CreateCounter<long>("pgproxy.sessions.opened", "{session}", "Client sessions relayed to an upstream.");
        meter.CreateObservableUpDownCounter("pgproxy.sessions.open", ObserveOpenSessions, "{session}", "Client sessions open now.");
        meter.CreateObservableGauge("pgproxy.sessions.state", ObserveSessionStates, "{session}", "Client sessions open now, by state (idle, active, idle_in_transaction, waiting).");
        sessionDuration = Histogram("pgproxy.session.duration", "How long client sessions lasted, from the upstream connection to the close.", SessionBuckets);
        meter.CreateObservableUpDownCounter("pgproxy.logins.in_flight", ObserveLoginsInFlight, "{login}", "Logins begun and not finished: from the client's StartupMessage to the first ReadyForQuery.");
        loginDuration = Histogram("pgproxy.login.duration", "How long logins took, from the client's StartupMessage to the first ReadyForQuery (result ok) or the end of the session (result failed).", ConnectBuckets);
        upstreamConnectDuration = Histogram("pgproxy.upstream.connect.duration", "How long opening an upstream connection for a session took (TCP, and TLS when redirect.tls asks).", ConnectBuckets);
        upstreamConnectFailures = meter.CreateCounter<long>("pgproxy.upstream.connect_failures", "{connection}", "Upstream connections for sessions that could not be made.");
        transactionDuration = Histogram("pgproxy.transaction.duration", "How long transactions took, from their first statement to the ReadyForQuery that ended them.", StatementBuckets);
        queryDuration = Histogram("pgproxy.query.duration", "How long statements took, from the Query or Execute to their CommandComplete or ErrorResponse.", StatementBuckets);
        bytes = meter.CreateCounter<long>("pgproxy.bytes", "By", "Bytes relayed, by direction (client_to_server, server_to_client); added when a session closes.");
        errors = meter.CreateCounter<long>("pgproxy.errors", "{error}", "Errors the proxy raised to clients itself, by SQLSTATE.");
        rewrites = meter.CreateCounter<long>("pgproxy.rewrites", "{statement}", "Statements a rule or plugin rewrote, by rule or plugin.");
        refusals = meter.CreateCounter<long>("pgproxy.refusals", "{statement}", "Statements a rule or plugin refused, by rule or plugin.");
        masks = meter.CreateCounter<long>("pgproxy.masks", "{statement}", "Statements whose results a mask changed, by mask.");
        pluginFailures = meter.CreateCounter<long>("pgproxy.plugin.failures", "{call}", "Interceptor calls that threw, by plugin.");
        pluginTimeouts = meter.CreateCounter<long>("pgproxy.plugin.timeouts", "{call}", "Interceptor calls that ran out of time, by plugin.");
        meter.CreateObservableCounter("pgproxy.stats.evictions", () => Observe(Volatile.Read(ref statisticsEvictions)), "{entry}", "Per-query statistics entries evicted because stats.max-queries were kept already.");
        meter.CreateObservableCounter("pgproxy.query_log.dropped", () => Observe(Volatile.Read(ref queryLogDropped)), "{line}", "Query log lines dropped because the query log's queue was full.");
        reloads = meter.CreateCounter<long>("pgproxy.reloads", "{reload}", "Configuration reloads, by result (ok, failed).");
        meter.CreateObservableGauge("pgproxy.reload.last_timestamp", ObserveLastReloadTime, "s", "When the configuration was last loaded or reloaded (applied or not), in Unix seconds.");
        meter.CreateObservableGauge("pgproxy.reload.last_success", ObserveLastReloadApplied, null, "1 when the last load or reload of the configuration applied, 0 when it failed.");
        meter.CreateObservableGauge("pgproxy.pool.clients", ObservePoolClients, "{client}", "Clients of a pool (instance, user, database) now, by state: active (holding a server connection) or waiting.");
        meter.CreateObservableGauge("pgproxy.pool.servers", ObservePoolServers, "{connection}", "Server connections of a pool now, by state: active (lent to a client, or opening for one) or idle.");
        meter.CreateObservableGauge("pgproxy.pool.wait.longest", ObservePoolLongestWait, "s", "How long the first client in a pool's queue has waited so far; 0 when none waits.");
        poolWait = Histogram("pgproxy.pool.wait.duration", "How long clients waited for a pool's server connection, when none was free at once.", StatementBuckets);
        Assembly assembly = typeof(ProxyMetrics).Assembly;
        string? informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        KeyValuePair<string, object?>[] build =
        [
            new("version", assembly.GetName().Version?.ToString(3) ?? "unknown"),
            new("revision", informational?.Split('+') is [_, var commit] ? commit : ""),
            new("runtime", RuntimeInformation.FrameworkDescription),
        ];
        // The managed heap as the last GC left it (GCMemoryInfo, no collection forced): with RSS from the kernel, what tells
        // a leak of objects from a heap that only grew to meet a peak (bench/soak.sh samples both).
        meter.CreateObservableGauge("pgproxy.gc.heap", static () => GC.GetGCMemoryInfo().HeapSizeBytes, "By", "The managed (GC) heap's size after the last collection, fragmentation included.");
        meter.CreateObservableGauge("pgproxy.build.info", () => new Measurement<long>(1, build), null, "Always 1: the version and source revision of PgProxy, and the .NET runtime it runs on.");
    }

    /// <summary>
    /// True while something listens to the statement histograms: the statistics stage may skip timing statements
    /// for metrics when it is false.
    /// </summary>
    internal bool RecordsStatements => queryDuration.Enabled || transactionDuration.Enabled;

    internal void SessionOpened(string listen)
    {
        Interlocked.Increment(ref For(listen).OpenSessions);
        sessionsOpened.Add(1, Listen(listen));
    }

    internal void SessionClosed(string listen, double durationSeconds, long bytesFromClient, long bytesToClient)
    {
        Interlocked.Decrement(ref For(listen).OpenSessions);
        var tag = Listen(listen);
        sessionDuration.Record(durationSeconds, tag);
        if (bytes.Enabled)
        {
            bytes.Add(bytesFromClient, tag, new KeyValuePair<string, object?>("direction", "client_to_server"));
            bytes.Add(bytesToClient, tag, new KeyValuePair<string, object?>("direction", "server_to_client"));
        }
    }

    /// <summary>
    /// Starts timing a login when the session has the client's StartupMessage; the login ends at the first
    /// ReadyForQuery <paramref name="state"/> sees, or when the measurement is disposed (the session ended first).
    /// </summary>
    internal LoginMeasurement LoginStarted(string listen, ServerProtocolState state) => new(this, listen, For(listen), state);

    internal void UpstreamConnected(string listen, double seconds) => upstreamConnectDuration.Record(seconds, Listen(listen));

    internal void UpstreamConnectFailed(string listen) => upstreamConnectFailures.Add(1, Listen(listen));

    /// <summary>A transaction ended (ReadyForQuery 'I' after 'T' or 'E', or a statement outside a transaction block).</summary>
    internal void TransactionCompleted(string listen, double seconds) => transactionDuration.Record(seconds, Listen(listen));

    /// <summary>A statement ended with its CommandComplete or ErrorResponse.</summary>
    internal void QueryCompleted(string listen, double seconds) => queryDuration.Record(seconds, Listen(listen));

    internal void ClientError(string listen, string sqlState) =>
        errors.Add(1, Listen(listen), new KeyValuePair<string, object?>("sqlstate", sqlState));

    /// <param name="listen">The instance's listen name.</param>
    /// <param name="by">The configured rule or plugin that rewrote the statement (a name from the configuration, never from a client).</param>
    internal void Rewritten(string listen, string by) => rewrites.Add(1, Listen(listen), By(by));

    /// <param name="listen">The instance's listen name.</param>
    /// <param name="by">The configured rule or plugin that refused the statement.</param>
    internal void Refused(string listen, string by) => refusals.Add(1, Listen(listen), By(by));

    /// <param name="listen">The instance's listen name.</param>
    /// <param name="by">The configured mask (or response plugin) that changed the statement's rows.</param>
    internal void Masked(string listen, string by) => masks.Add(1, Listen(listen), By(by));

    /// <summary>An interceptor call threw (a timeout is counted by <see cref="PluginTimedOut"/> instead).</summary>
    internal void PluginFailed(string listen, string plugin) => pluginFailures.Add(1, Listen(listen), Plugin(plugin));

    internal void PluginTimedOut(string listen, string plugin) => pluginTimeouts.Add(1, Listen(listen), Plugin(plugin));

    /// <summary>The first configuration runs: the reload gauges start from it, the reload counter does not count it.</summary>
    internal void ConfigurationLoaded() => StampReload(applied: true);

    /// <summary>A reload ended, applied or refused (its errors logged).</summary>
    internal void Reloaded(bool applied)
    {
        reloads.Add(1, new KeyValuePair<string, object?>("result", applied ? "ok" : "failed"));
        StampReload(applied);
    }

    /// <summary>
    /// Where <c>pgproxy.sessions.state</c> reads its values at each collection: one row per instance and state
    /// (idle, active, idle_in_transaction, waiting). Replaces any source registered before. It is called on the
    /// collecting thread (a scrape), while sessions change state: it must be safe to call from any thread, and cheap.
    /// </summary>
    internal void ObserveSessionStates(Func<IEnumerable<(string Listen, string State, long Count)>> source) =>
        Volatile.Write(ref sessionStates, source);

    /// <summary>Where the pool gauges read every pool's counts at each collection (any thread; cheap).</summary>
    internal void ObservePools(Func<IEnumerable<(string Listen, string User, string Database, Pooling.PoolCounts Counts)>> source) =>
        Volatile.Write(ref pools, source);

    /// <summary>A client waited <paramref name="seconds"/> for a server connection of the pool of (instance, user, database).</summary>
    internal void PoolWaited(string listen, string user, string database, double seconds) =>
        poolWait.Record(seconds, Listen(listen), new KeyValuePair<string, object?>("user", user), new KeyValuePair<string, object?>("database", database));

    /// <summary>Where the statistics' eviction count and the query log's drop count are read at each collection (both since start).</summary>
    internal void ObserveStatistics(Func<long> evictions, Func<long> dropped)
    {
        Volatile.Write(ref statisticsEvictions, evictions);
        Volatile.Write(ref queryLogDropped, dropped);
    }

    public void Dispose() => meter.Dispose();

    internal void LoginEnded(InstanceGauges instance, string listen, double seconds, bool succeeded)
    {
        Interlocked.Decrement(ref instance.LoginsInFlight);
        loginDuration.Record(seconds, Listen(listen), new KeyValuePair<string, object?>("result", succeeded ? "ok" : "failed"));
    }

    private static KeyValuePair<string, object?> Listen(string listen) => new(ListenTag, listen);

    private static KeyValuePair<string, object?> By(string by) => new("by", by);

    private static KeyValuePair<string, object?> Plugin(string plugin) => new("plugin", plugin);

    private Histogram<double> Histogram(string name, string description, IReadOnlyList<double> buckets) =>
        meter.CreateHistogram(name, "s", description, tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    private InstanceGauges For(string listen) => gauges.GetOrAdd(listen, static _ => new InstanceGauges());

    private void StampReload(bool applied)
    {
        Volatile.Write(ref lastReloadUnixMilliseconds, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Volatile.Write(ref lastReloadApplied, applied ? 1 : 0);
    }

    private IEnumerable<Measurement<long>> ObserveOpenSessions() =>
        gauges.Select(entry => new Measurement<long>(Volatile.Read(ref entry.Value.OpenSessions), Listen(entry.Key)));

    private IEnumerable<Measurement<long>> ObserveLoginsInFlight() =>
        gauges.Select(entry => new Measurement<long>(Volatile.Read(ref entry.Value.LoginsInFlight), Listen(entry.Key)));

    private IEnumerable<Measurement<long>> ObserveSessionStates() =>
        Volatile.Read(ref sessionStates) is { } source
            ? source().Select(row => new Measurement<long>(row.Count, Listen(row.Listen), new KeyValuePair<string, object?>("state", row.State)))
            : [];

    private IEnumerable<(string Listen, string User, string Database, Pooling.PoolCounts Counts)> Pools() =>
        Volatile.Read(ref pools) is { } source ? source() : [];

    private IEnumerable<Measurement<long>> ObservePoolClients() => Pools().SelectMany(pool => new[]
    {
        PoolMeasurement(pool.Counts.Active, pool, "active"),
        PoolMeasurement(pool.Counts.Waiting, pool, "waiting"),
    });

    private IEnumerable<Measurement<long>> ObservePoolServers() => Pools().SelectMany(pool => new[]
    {
        PoolMeasurement(pool.Counts.Active, pool, "active"),
        PoolMeasurement(pool.Counts.Idle, pool, "idle"),
    });

    private IEnumerable<Measurement<double>> ObservePoolLongestWait() => Pools().Select(pool => new Measurement<double>(
        pool.Counts.LongestWait.TotalSeconds,
        Listen(pool.Listen),
        new KeyValuePair<string, object?>("user", pool.User),
        new KeyValuePair<string, object?>("database", pool.Database)));

    private static Measurement<long> PoolMeasurement(long value, (string Listen, string User, string Database, Pooling.PoolCounts Counts) pool, string state) => new(
        value,
        Listen(pool.Listen),
        new KeyValuePair<string, object?>("user", pool.User),
        new KeyValuePair<string, object?>("database", pool.Database),
        new KeyValuePair<string, object?>("state", state));

    private static IEnumerable<Measurement<long>> Observe(Func<long>? source) =>
        source is null ? [] : [new Measurement<long>(source())];

    private IEnumerable<Measurement<double>> ObserveLastReloadTime() =>
        Volatile.Read(ref lastReloadApplied) < 0 ? [] : [new Measurement<double>(Volatile.Read(ref lastReloadUnixMilliseconds) / 1000.0)];

    private IEnumerable<Measurement<long>> ObserveLastReloadApplied() =>
        Volatile.Read(ref lastReloadApplied) is var applied and >= 0 ? [new Measurement<long>(applied)] : [];

    /// <summary>What is open now on one instance (by listen name), read by the observable instruments.</summary>
    internal sealed class InstanceGauges
    {
        public long OpenSessions;
        public long LoginsInFlight;
    }
}

/// <summary>
/// One login being timed: in flight from <see cref="ProxyMetrics.LoginStarted"/> until the first ReadyForQuery the
/// server sends (ok), or until it is disposed with the session (failed, unless a ReadyForQuery was seen by then).
/// </summary>
internal sealed class LoginMeasurement : IDisposable
{
    private readonly ProxyMetrics metrics;
    private readonly string listen;
    private readonly ProxyMetrics.InstanceGauges instance;
    private readonly ServerProtocolState state;
    private readonly long started = Stopwatch.GetTimestamp();
    private int ended;

    internal LoginMeasurement(ProxyMetrics metrics, string listen, ProxyMetrics.InstanceGauges instance, ServerProtocolState state)
    {
        this.metrics = metrics;
        this.listen = listen;
        this.instance = instance;
        this.state = state;
        Interlocked.Increment(ref instance.LoginsInFlight);

        // The backend pump calls this at the login's ReadyForQuery, on its own thread: no task, no thread-pool hop.
        state.OnLoggedIn(() => End(succeeded: true));
    }

    /// <summary>
    /// Ends the login with the session, as failed unless a ReadyForQuery arrived (then it has ended already, or the
    /// transaction status says so).
    /// </summary>
    public void Dispose() => End(succeeded: state.TransactionStatus != TransactionStatus.Unknown);

    private void End(bool succeeded)
    {
        if (Interlocked.Exchange(ref ended, 1) == 0)
        {
            metrics.LoginEnded(instance, listen, Stopwatch.GetElapsedTime(started).TotalSeconds, succeeded);
        }
    }
}

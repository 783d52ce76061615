using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Rules;
using PgProxy.Sql;
using PgProxy.Core.Statistics;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Sessions;

/// <summary>
/// What every session of one instance shares under one configuration snapshot: its configuration, loggers, metrics,
/// interceptors and TLS material. Immutable: a reload builds a new one, and a session takes the one current when it
/// starts and keeps it to its end, so its interceptors and certificates always come from the same snapshot.
/// </summary>
internal sealed class SessionEnvironment(InstanceConfig instance, ILogger logger, ILogger interceptLogger, ProxyMetrics metrics, InstanceInterceptors interceptors, InstanceSecurity security)
{
    /// <summary>
    /// Reads wait with a zero-byte read before renting a buffer, so an idle session holds no receive buffer;
    /// buffers come from the shared array pool and return to it once forwarded.
    /// </summary>
    public static StreamPipeReaderOptions ReaderOptions { get; } = new(
        pool: null,
        bufferSize: 64 * 1024,
        minimumReadSize: 4 * 1024,
        leaveOpen: true,
        useZeroByteReads: true);

    public InstanceConfig Instance { get; } = instance;

    public string InstanceName => Instance.Listen.Name;

    public ILogger Logger { get; } = logger;

    public ProxyMetrics Metrics { get; } = metrics;

    /// <summary>The intercept log.</summary>
    public ILogger InterceptLogger { get; } = interceptLogger;

    /// <summary>The interceptors of the instance in this snapshot, in configuration order.</summary>
    public InstanceInterceptors Interceptors { get; } = interceptors;

    /// <summary>Where sessions record per-query statistics (shared by every snapshot); null when <c>stats.queries</c> is off.</summary>
    public QueryStatistics? Statistics { get; init; }

    /// <summary>The query log, when the configuration has one.</summary>
    public QueryLog? QueryLog { get; init; }

    /// <summary>The <c>query-log</c> section of this snapshot (null with no query log).</summary>
    public QueryLogConfig? QueryLogSettings { get; init; }

    /// <summary>The shapes of query texts seen, shared by every session (a cache).</summary>
    public QueryShapes? Shapes { get; init; }

    /// <summary>The ordered frame handlers of the instance's pumps in this snapshot.</summary>
    public FramePipeline Pipeline { get; } = FramePipeline.For(interceptors, rulesPossible: PostgresParser.IsAvailable);

    /// <summary>The instance's rules in this snapshot (swapped into <see cref="LiveRules"/> when the snapshot runs).</summary>
    public RuleSet Rules { get; init; } = RuleSet.Empty;

    /// <summary>The instance's rules in force now, shared with every snapshot of the instance: sessions read them per statement.</summary>
    public LiveRules LiveRules { get; init; } = new();

    /// <summary>Certificates, upstream TLS and verifiers of the instance in this snapshot.</summary>
    public InstanceSecurity Security { get; } = security;

    /// <summary>The admin console of this snapshot; null without an <c>admin</c> section (database pgproxy is then relayed).</summary>
    public AdminConsole? Console { get; init; }

    /// <summary>The instance's server connection pools when it pools (<c>pool.mode</c> session or transaction); null otherwise.</summary>
    public Pooling.InstancePools? Pools { get; set; }

    /// <summary>True for the console's own listener (<c>admin.listen</c>): every start-up is a console session, none goes upstream.</summary>
    public bool ConsoleOnly { get; init; }

    private int plainTextFallbackWarned;

    /// <summary>
    /// True the first time a session of the instance falls back to a plain-text upstream for SCRAM: it is logged once at
    /// warning per snapshot (a reload may have changed the settings the warning is about).
    /// </summary>
    public bool ClaimPlainTextFallbackWarning() => Interlocked.Exchange(ref plainTextFallbackWarned, 1) == 0;
}

using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Sessions;

/// <summary>What every session of one instance shares: its configuration, logger and metrics.</summary>
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

    private InstanceInterceptors interceptors = interceptors;

    /// <summary>
    /// The interceptors new sessions get. A reload replaces them; a session reads them once, when it starts, and keeps
    /// those to its end.
    /// </summary>
    public InstanceInterceptors Interceptors
    {
        get => Volatile.Read(ref interceptors);
        set => Volatile.Write(ref interceptors, value);
    }

    private InstanceSecurity security = security;

    /// <summary>
    /// Certificates, upstream TLS and verifiers for new sessions. A reload replaces them; a session reads them once,
    /// when it starts, and keeps those to its end.
    /// </summary>
    public InstanceSecurity Security
    {
        get => Volatile.Read(ref security);
        set => Volatile.Write(ref security, value);
    }

    private int plainTextFallbackWarned;

    /// <summary>True the first time a session of the instance falls back to a plain-text upstream for SCRAM: it is logged once at warning.</summary>
    public bool ClaimPlainTextFallbackWarning() => Interlocked.Exchange(ref plainTextFallbackWarned, 1) == 0;
}

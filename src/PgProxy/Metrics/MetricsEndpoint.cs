using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Hosting;

namespace PgProxy.Host.Metrics;

/// <summary>
/// The <c>metrics</c> section at work: an OpenTelemetry MeterProvider listening to the engine's meter, and Kestrel
/// serving its Prometheus exporter at <c>GET /metrics</c>. It starts with the server and follows reloads: a new
/// address gets a new Kestrel server on the same MeterProvider, so counters and histograms go on from where they were;
/// removing the section stops both, so nothing listens to the instruments any more.
/// </summary>
internal sealed class MetricsEndpoint : IReloadableSettings, IAsyncDisposable
{
    // A scrape in progress when the address moves gets this long to finish.
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    private readonly ILogger logger;
    private readonly SemaphoreSlim gate = new(1, 1);
    private MeterProvider? provider;
    private ScrapeServer? server;
    private MetricsConfig? applied;

    public MetricsEndpoint(ILoggerFactory loggerFactory)
    {
        logger = loggerFactory.CreateLogger("PgProxy.Metrics");
    }

    /// <summary>Where the endpoint listens now (a port 0 replaced by the one chosen), as <c>http://HOST:PORT</c>; empty when it does not.</summary>
    public IReadOnlyList<string> Addresses =>
        Volatile.Read(ref server)?.Addresses ?? [];

    /// <summary>Starts the endpoint of the configuration the server starts with; nothing when <paramref name="config"/> is null.</summary>
    /// <exception cref="InvalidOperationException">The address cannot be listened on; the message names <c>metrics.listen</c>.</exception>
    public Task StartAsync(MetricsConfig? config, CancellationToken cancellationToken) =>
        config is null ? Task.CompletedTask : StartListeningAsync(config, cancellationToken);

    private async Task StartListeningAsync(MetricsConfig config, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (applied is not null)
            {
                return;
            }

            provider = CreateProvider();
            try
            {
                server = await ScrapeServer.StartAsync(config, provider, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                provider.Dispose();
                provider = null;
                throw;
            }

            applied = config;
            LogListening();
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// A new address that another program holds would leave the reloaded configuration without its endpoint: the
    /// reload is refused instead. The address is bound and released again; the port this endpoint holds is not probed.
    /// </summary>
    public IReadOnlyList<string> Check(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        MetricsConfig? next = config.Metrics;
        MetricsConfig? running = Volatile.Read(ref applied);
        if (next is null || next == running || next.Port == 0 || next.Port == running?.Port)
        {
            return [];
        }

        try
        {
            foreach (IPAddress address in Resolve(next.Host))
            {
                using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                probe.Bind(new IPEndPoint(address, next.Port));
            }
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            return [Describe(next, e.Message)];
        }

        return [];
    }

    /// <summary>Moves, starts or stops the endpoint as the reloaded configuration says; a failure is logged, and the next reload tries again.</summary>
    public async ValueTask ApplyAsync(ProxyConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        await ApplyAsync(config.Metrics).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the endpoint's address for good (after a hand-over, so that the process that took over can bind it); the
    /// meter provider goes on until dispose, and no reload starts it again.
    /// </summary>
    public Task StopAsync() => ApplyAsync((MetricsConfig?)null);

    public async ValueTask DisposeAsync()
    {
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await StopServerAsync().ConfigureAwait(false);
            provider?.Dispose();
            provider = null;
            applied = null;
        }
        finally
        {
            gate.Release();
        }

        gate.Dispose();
    }

    private static MeterProvider CreateProvider() =>
        Sdk.CreateMeterProviderBuilder()
            .AddMeter(ProxyMetrics.MeterName)
            .AddPrometheusExporter(options =>
            {
                // Every series is PgProxy's: the otel_scope_* labels and the target_info series would only repeat that.
                options.ScopeInfoEnabled = false;
                options.TargetInfoEnabled = false;

                // Each scrape collects afresh (a collection of PgProxy's series takes well under a millisecond), so a
                // scrape right after an event shows it; the default would answer scrapes within 300 ms from one.
                options.ScrapeResponseCacheDurationMilliseconds = 0;
            })
            .Build();

    internal static IPAddress[] Resolve(string host)
    {
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return [address];
        }

        IPAddress[] addresses = Dns.GetHostAddresses(host);
        return addresses.Length > 0 ? [.. addresses.Distinct()] : throw new InvalidOperationException($"\"{host}\" resolves to no address");
    }

    internal static string Describe(MetricsConfig config, string reason) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"metrics.listen: cannot listen on {config.Host}:{config.Port}: {reason}");

    private async Task ApplyAsync(MetricsConfig? next)
    {
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (next == applied && (next is null || server is not null))
            {
                return;
            }

            // The old address closes first: the new one may be the same port on another host name.
            await StopServerAsync().ConfigureAwait(false);
            applied = null;
            if (next is null)
            {
                provider?.Dispose();
                provider = null;
                return;
            }

            provider ??= CreateProvider();
            try
            {
                server = await ScrapeServer.StartAsync(next, provider, CancellationToken.None).ConfigureAwait(false);
                applied = next;
                LogListening();
            }
            catch (InvalidOperationException e)
            {
                MetricsLog.ListenFailed(logger, e.Message);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task StopServerAsync()
    {
        if (server is not { } running)
        {
            return;
        }

        IReadOnlyList<string> addresses = running.Addresses;
        Volatile.Write(ref server, null);
        await running.StopAsync(StopTimeout).ConfigureAwait(false);
        foreach (string address in addresses)
        {
            MetricsLog.Stopped(logger, address + MetricsConfig.Path);
        }
    }

    private void LogListening()
    {
        foreach (string address in Addresses)
        {
            MetricsLog.Listening(logger, address + MetricsConfig.Path);
        }
    }
}

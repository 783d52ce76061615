using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using PgProxy.Core.Configuration;

namespace PgProxy.Host.Metrics;

/// <summary>
/// One Kestrel server answering <c>GET /metrics</c> with the Prometheus exporter of a MeterProvider. A class of its own
/// so that <see cref="MetricsEndpoint"/>, which every process has, names no ASP.NET Core type: the JIT then loads
/// Kestrel's assemblies (about 2 MB resident) only when a <c>metrics</c> section asks for the endpoint.
/// </summary>
internal sealed class ScrapeServer
{
    private readonly WebApplication app;

    private ScrapeServer(WebApplication app)
    {
        this.app = app;
    }

    /// <summary>Where it listens (a port 0 replaced by the one chosen), as <c>http://HOST:PORT</c>.</summary>
    public IReadOnlyList<string> Addresses =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>Listens on every address of the host (the first one only for port 0).</summary>
    /// <exception cref="InvalidOperationException">The address cannot be listened on; the message names <c>metrics.listen</c>.</exception>
    public static async Task<ScrapeServer> StartAsync(MetricsConfig config, MeterProvider provider, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        try
        {
            addresses = MetricsEndpoint.Resolve(config.Host);
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            throw new InvalidOperationException(MetricsEndpoint.Describe(config, e.Message), e);
        }

        // The empty builder reads no appsettings.json, ASPNETCORE_* variable or command line: the section says it all.
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "pgproxy" });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            foreach (IPAddress address in config.Port == 0 ? addresses[..1] : addresses)
            {
                kestrel.Listen(address, config.Port);
            }
        });
        WebApplication app = builder.Build();
        app.UseOpenTelemetryPrometheusScrapingEndpoint(provider, predicate: null, path: MetricsConfig.Path, configureBranchedPipeline: null, optionsName: null);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException(MetricsEndpoint.Describe(config, e.Message), e);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new ScrapeServer(app);
    }

    /// <summary>Stops listening, giving a scrape in progress at most <paramref name="timeout"/>, and releases the server.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        using (var stop = new CancellationTokenSource(timeout))
        {
            await app.StopAsync(stop.Token).ConfigureAwait(false);
        }

        await app.DisposeAsync().ConfigureAwait(false);
    }
}

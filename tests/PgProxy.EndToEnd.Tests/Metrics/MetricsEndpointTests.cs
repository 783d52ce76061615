using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Metrics;

/// <summary>
/// The pgproxy process with a metrics section: /metrics scraped over HTTP and parsed as Prometheus does, after a known
/// workload. A process of its own per test, so no other test's sessions are counted.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class MetricsEndpointTests(PostgresFixture fixture)
{
    /// <summary>The labels a series may carry: each takes a bounded set of values (never query text or a client address).</summary>
    private static readonly HashSet<string> AllowedLabels = ["listen", "direction", "sqlstate", "result", "state", "by", "plugin", "le", "version", "revision", "runtime"];

    /// <summary>The series that describe the process rather than one instance, so they carry no listen label.</summary>
    private static readonly HashSet<string> ProcessSeries =
        [
            "pgproxy_build_info", "pgproxy_reloads_total", "pgproxy_reload_last_success", "pgproxy_reload_last_timestamp_seconds",
            "pgproxy_stats_evictions_total", "pgproxy_query_log_dropped_total", "pgproxy_gc_heap_bytes",
        ];

    private static readonly string[] Listens = ["proxy", "down"];

    private static string Instance(string name, string host, int port) =>
        string.Create(CultureInfo.InvariantCulture, $$"""
              - listen: {name: {{name}}, host: 127.0.0.1, port: 0}
                redirect: {name: postgresql, host: {{host}}, port: {{port}}, tls: {mode: disable} }

            """);

    private static string Config(int metricsPort, params string[] instances) =>
        string.Create(CultureInfo.InvariantCulture, $"settings:\n  log-level: info\n{Metrics(metricsPort)}instances:\n{string.Concat(instances)}");

    private static string Metrics(int? port) =>
        port is { } value ? string.Create(CultureInfo.InvariantCulture, $"metrics:\n  listen: {{host: 127.0.0.1, port: {value}}}\n") : "";

    /// <summary>A port nothing listens on now: the system's choice for a socket closed again at once.</summary>
    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string ConnectionString(int port) => ProxyProcess.TrustConnectionString(port);

    /// <summary>One session: open, <paramref name="queries"/> statements, close (Terminate).</summary>
    private static async Task SessionAsync(int port, int queries)
    {
        await using var connection = new NpgsqlConnection(ConnectionString(port));
        await connection.OpenAsync();
        for (int i = 0; i < queries; i++)
        {
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            Assert.Equal(1, await command.ExecuteScalarAsync());
        }
    }

    private static async Task ReloadAsync(ProxyProcess proxy, string outcome)
    {
        int before = CountOf(proxy.Output, outcome);
        await proxy.SignalAsync(PosixSignal.SIGHUP);
        await proxy.WaitForOutputAsync(output => CountOf(output, outcome) > before, MetricsScraper.Deadline, $"pgproxy logs \"{outcome}\"");
        Assert.False(proxy.HasExited, proxy.Output);
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, string.Empty, StringComparison.Ordinal).Length) / what.Length;

    private static async Task AssertRefusedAsync(string url)
    {
        var uri = new Uri(url);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(() => socket.ConnectAsync(IPAddress.Parse(uri.Host), uri.Port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task The_counters_match_a_known_workload_exactly()
    {
        const int Sessions = 5;
        const int QueriesEach = 3;
        using ConfigDirectory directory = ConfigDirectory.Create(Config(
            0,
            Instance("proxy", fixture.Server.Host, fixture.Server.Port),
            Instance("down", "127.0.0.1", FreePort())));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 2);
        string url = await MetricsScraper.WaitForListeningAsync(proxy);

        await Task.WhenAll(Enumerable.Range(0, Sessions).Select(_ => SessionAsync(proxy.PortOf("proxy"), QueriesEach)));
        var unreachable = await Assert.ThrowsAsync<PostgresException>(() => SessionAsync(proxy.PortOf("down"), 0));
        Assert.Equal("08001", unreachable.SqlState);

        // The sessions end on the proxy's side a moment after the clients closed them.
        PrometheusScrape scrape = await MetricsScraper.ScrapeUntilAsync(
            url,
            s => s.Value("pgproxy_session_duration_seconds_count", ("listen", "proxy")) == Sessions
                && s.Value("pgproxy_login_duration_seconds_count", ("listen", "down")) == 1,
            $"{Sessions} sessions closed and the failed login counted");

        Assert.Equal(Sessions, scrape.Value("pgproxy_sessions_opened_total", ("listen", "proxy")));
        Assert.False(scrape.Contains("pgproxy_sessions_opened_total", ("listen", "down")), "a session whose upstream is down is not opened");
        Assert.Equal(0, scrape.Value("pgproxy_sessions_open", ("listen", "proxy")));
        Assert.Equal(0, scrape.Value("pgproxy_logins_in_flight", ("listen", "proxy")));
        Assert.Equal(0, scrape.Value("pgproxy_logins_in_flight", ("listen", "down")));
        Assert.Equal(Sessions, scrape.Value("pgproxy_login_duration_seconds_count", ("listen", "proxy"), ("result", "ok")));
        Assert.Equal(1, scrape.Value("pgproxy_login_duration_seconds_count", ("listen", "down"), ("result", "failed")));
        Assert.Equal(Sessions, scrape.Value("pgproxy_upstream_connect_duration_seconds_count", ("listen", "proxy")));
        Assert.Equal(1, scrape.Value("pgproxy_upstream_connect_failures_total", ("listen", "down")));
        Assert.Equal(1, scrape.Value("pgproxy_errors_total", ("listen", "down"), ("sqlstate", "08001")));
        Assert.Single(scrape.Series("pgproxy_errors_total"));
        Assert.InRange(scrape.Value("pgproxy_bytes_total", ("listen", "proxy"), ("direction", "client_to_server")), Sessions * QueriesEach * 14, double.MaxValue);
        Assert.InRange(scrape.Value("pgproxy_bytes_total", ("listen", "proxy"), ("direction", "server_to_client")), 1, double.MaxValue);
        Assert.Equal(0, scrape.Value("pgproxy_stats_evictions_total"));
        Assert.Equal(0, scrape.Value("pgproxy_query_log_dropped_total"));
        PrometheusSample build = Assert.Single(scrape.Series("pgproxy_build_info"));
        Assert.Equal((1.0, global::PgProxy.Host.ThisAssembly.Version), (build.Value, build.Label("version")));

        Assert.Empty(scrape.HistogramProblems());
        Assert.Equal("histogram", scrape.Types["pgproxy_login_duration_seconds"]);
        Assert.Equal("counter", scrape.Types["pgproxy_sessions_opened_total"]);
        Assert.Equal("gauge", scrape.Types["pgproxy_sessions_open"]);
        Assert.All(scrape.Samples, s => Assert.StartsWith("pgproxy_", s.Name, StringComparison.Ordinal));
        Assert.All(scrape.Samples, s => Assert.Subset(AllowedLabels, s.Labels.Keys.ToHashSet()));
        Assert.All(scrape.Samples.Where(s => !ProcessSeries.Contains(s.Name)), s => Assert.Contains(s.Label("listen"), Listens));
        Assert.All(scrape.Samples, s => Assert.DoesNotContain(s.Labels.Values, v => v.Contains("127.0.0.1", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Reloads_are_counted_by_result_with_the_time_and_result_of_the_last()
    {
        double started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        string config = Config(0, Instance("proxy", fixture.Server.Host, fixture.Server.Port));
        using ConfigDirectory directory = ConfigDirectory.Create(config);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string url = await MetricsScraper.WaitForListeningAsync(proxy);

        PrometheusScrape first = await MetricsScraper.ScrapeAsync(url);
        Assert.False(first.Contains("pgproxy_reloads_total"), "the first load is not a reload");
        Assert.Equal(1, first.Value("pgproxy_reload_last_success"));
        double loaded = first.Value("pgproxy_reload_last_timestamp_seconds");
        Assert.InRange(loaded, started - 1, started + 120);

        await ReloadAsync(proxy, "Configuration reloaded");
        PrometheusScrape applied = await MetricsScraper.ScrapeUntilAsync(url, s => s.Value("pgproxy_reloads_total", ("result", "ok")) == 1, "the reload counted");
        Assert.Equal(1, applied.Value("pgproxy_reload_last_success"));
        Assert.InRange(applied.Value("pgproxy_reload_last_timestamp_seconds"), loaded, loaded + 120);

        await File.WriteAllTextAsync(directory.ConfigFile, config.Replace("port: 0}", "port: many}", StringComparison.Ordinal));
        await ReloadAsync(proxy, "Reload failed");
        PrometheusScrape failed = await MetricsScraper.ScrapeUntilAsync(url, s => s.Value("pgproxy_reloads_total", ("result", "failed")) == 1, "the failed reload counted");
        Assert.Equal(1, failed.Value("pgproxy_reloads_total", ("result", "ok")));
        Assert.Equal(0, failed.Value("pgproxy_reload_last_success"));
        Assert.InRange(failed.Value("pgproxy_reload_last_timestamp_seconds"), applied.Value("pgproxy_reload_last_timestamp_seconds"), loaded + 120);
    }

    [Fact]
    public async Task The_endpoint_follows_a_reload_of_its_address_and_keeps_its_counts()
    {
        string proxyInstance = Instance("proxy", fixture.Server.Host, fixture.Server.Port);
        using ConfigDirectory directory = ConfigDirectory.Create(Config(0, proxyInstance));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string firstUrl = await MetricsScraper.WaitForListeningAsync(proxy);
        await SessionAsync(proxy.PortOf("proxy"), 1);
        await MetricsScraper.ScrapeUntilAsync(firstUrl, s => s.Value("pgproxy_session_duration_seconds_count") == 1, "the session counted");

        int port = FreePort();
        await File.WriteAllTextAsync(directory.ConfigFile, Config(port, proxyInstance));
        await ReloadAsync(proxy, "Configuration reloaded");
        string movedUrl = await MetricsScraper.WaitForListeningAsync(proxy, seen: 1);

        Assert.Equal($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/metrics", movedUrl);
        await AssertRefusedAsync(firstUrl);
        PrometheusScrape moved = await MetricsScraper.ScrapeAsync(movedUrl);
        Assert.Equal(1, moved.Value("pgproxy_sessions_opened_total", ("listen", "proxy")));
        Assert.Equal(1, moved.Value("pgproxy_reloads_total", ("result", "ok")));

        // An address another program holds is refused at the reload's check; the endpoint stays where it is.
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        holder.Listen();
        int held = ((IPEndPoint)holder.LocalEndPoint!).Port;
        await File.WriteAllTextAsync(directory.ConfigFile, Config(held, proxyInstance));
        await ReloadAsync(proxy, "Reload failed");
        Assert.Contains($"metrics.listen: cannot listen on 127.0.0.1:{held.ToString(CultureInfo.InvariantCulture)}", proxy.Output, StringComparison.Ordinal);
        Assert.Equal(1, (await MetricsScraper.ScrapeAsync(movedUrl)).Value("pgproxy_reloads_total", ("result", "failed")));

        // Without the section there is no endpoint.
        await File.WriteAllTextAsync(directory.ConfigFile, Config(0, proxyInstance).Replace(Metrics(0), "", StringComparison.Ordinal));
        await ReloadAsync(proxy, "Configuration reloaded");
        Assert.Contains($"Metrics endpoint stopped listening on {movedUrl}", proxy.Output, StringComparison.Ordinal);
        await AssertRefusedAsync(movedUrl);
    }

    [Fact]
    public async Task An_address_in_use_stops_the_start_naming_metrics_listen()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        holder.Listen();
        int held = ((IPEndPoint)holder.LocalEndPoint!).Port;
        using ConfigDirectory directory = ConfigDirectory.Create(Config(held, Instance("proxy", fixture.Server.Host, fixture.Server.Port)));

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => ProxyProcess.StartAsync(directory.ConfigFile, instances: 1));

        Assert.Contains("exited with 2", failure.Message, StringComparison.Ordinal); // an address cannot be bound (docs/operations.md, Exit codes)
        Assert.Contains($"Cannot start: metrics.listen: cannot listen on 127.0.0.1:{held.ToString(CultureInfo.InvariantCulture)}", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Paths_other_than_metrics_are_not_found()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(Config(0, Instance("proxy", fixture.Server.Host, fixture.Server.Port)));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string url = await MetricsScraper.WaitForListeningAsync(proxy);

        using var http = new HttpClient();
        using HttpResponseMessage response = await http.GetAsync(url.Replace("/metrics", "/", StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}

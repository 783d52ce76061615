using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Hosting;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.Host.Metrics;
using PgProxy.TestSupport;

namespace PgProxy.EndToEnd.Tests.Metrics;

/// <summary>
/// The Grafana dashboard and docs/operations.md against a real scrape: every series the dashboard queries exists, and
/// every family the endpoint serves is on the dashboard and in the documentation. The engine runs in this process
/// with the host's metrics endpoint, so that events whose callers are still being written can be recorded directly.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed partial class MetricsDocumentationTests(PostgresFixture fixture)
{
    private static readonly string[] FamilySuffixes = ["", "_bucket", "_sum", "_count"];

    private static readonly string DashboardPath = Path.Combine(RepositoryRoot.Path, "docs", "grafana", "pgproxy.json");

    /// <summary>
    /// A scrape with a sample of every family: a session, a refused login (upstream down), a reload, and one of each
    /// event whose caller is elsewhere (the statistics stage, the interceptor runner, the session registry).
    /// </summary>
    private async Task<PrometheusScrape> ScrapeOfEverythingAsync()
    {
        using var metrics = new ProxyMetrics();
        await using var endpoint = new MetricsEndpoint(NullLoggerFactory.Instance);
        await endpoint.StartAsync(new MetricsConfig { Port = 0 }, CancellationToken.None);
        ProxyConfig config = TestConfigs.Relay(fixture.Server.Host, fixture.Server.Port) with
        {
            Instances =
            [
                TestConfigs.Instance("proxy", fixture.Server.Host, fixture.Server.Port),
                TestConfigs.Instance("down", "127.0.0.1", 1),
            ],
        };
        await using var server = new ProxyServer(config, NullLoggerFactory.Instance, metrics);
        await server.StartAsync();

        await using (var connection = new NpgsqlConnection(ConnectionString(server.GetEndpoints("proxy")[0].Port)))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            Assert.Equal(1, await command.ExecuteScalarAsync()); // a statement and a transaction, timed by the relay
        }

        await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var connection = new NpgsqlConnection(ConnectionString(server.GetEndpoints("down")[0].Port));
            await connection.OpenAsync();
        });
        Assert.True((await server.Configuration.ReloadAsync()).Applied);

        // These need plugins, masks, pools or the console's session list; recorded here so their names as scraped are checked too.
        metrics.Rewritten("proxy", "tableau_hll");
        metrics.Refused("proxy", "no_drop");
        metrics.Masked("proxy", "ssn");
        metrics.PluginFailed("proxy", "tableau_hll");
        metrics.PluginTimedOut("proxy", "tableau_hll");
        metrics.ObserveSessionStates(() => [("proxy", "idle", 1)]);
        metrics.ObservePools(() => [("proxy", "app", "shop", new PgProxy.Core.Pooling.PoolCounts(1, 1, 1, TimeSpan.FromSeconds(1), 2, 0))]);
        metrics.PoolWaited("proxy", "app", "shop", 0.01);

        string url = endpoint.Addresses[0] + MetricsConfig.Path;
        return await MetricsScraper.ScrapeUntilAsync(
            url,
            s => s.Contains("pgproxy_session_duration_seconds_count", ("listen", "proxy"))
                && s.Contains("pgproxy_query_duration_seconds_count", ("listen", "proxy"))
                && s.Contains("pgproxy_login_duration_seconds_count", ("listen", "down")),
            "the session and the failed login counted");
    }

    private static string ConnectionString(int port) => ProxyProcess.TrustConnectionString(port);

    /// <summary>The PromQL of every panel target and every template variable of the dashboard.</summary>
    private static List<string> DashboardQueries()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(DashboardPath));
        var queries = new List<string>();
        foreach (JsonElement panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
        {
            if (panel.TryGetProperty("targets", out JsonElement targets))
            {
                queries.AddRange(targets.EnumerateArray().Select(t => t.GetProperty("expr").GetString()!));
            }
        }

        foreach (JsonElement variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.GetProperty("type").GetString() == "query")
            {
                queries.Add(variable.GetProperty("definition").GetString()!);
            }
        }

        return queries;
    }

    private static HashSet<string> SeriesIn(IEnumerable<string> queries) =>
        queries.SelectMany(q => SeriesName().Matches(q).Select(m => m.Value)).ToHashSet(StringComparer.Ordinal);

    [Fact]
    public async Task Every_series_the_dashboard_uses_exists_in_a_real_scrape_and_every_family_is_on_it()
    {
        PrometheusScrape scrape = await ScrapeOfEverythingAsync();
        var scraped = scrape.Samples.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        List<string> queries = DashboardQueries();
        HashSet<string> used = SeriesIn(queries);

        Assert.NotEmpty(queries);
        Assert.Empty(used.Where(name => !scraped.Contains(name)).Order(StringComparer.Ordinal));
        Assert.Empty(scrape.Types.Keys.Where(family => !FamilySuffixes.Any(suffix => used.Contains(family + suffix))).Order(StringComparer.Ordinal));
        Assert.Empty(scrape.HistogramProblems());
    }

    [Fact]
    public async Task Every_family_the_endpoint_serves_is_documented_with_its_type()
    {
        PrometheusScrape scrape = await ScrapeOfEverythingAsync();
        string operations = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "operations.md"));
        string section = operations[operations.IndexOf("## Metrics", StringComparison.Ordinal)..];

        foreach ((string family, string type) in scrape.Types)
        {
            Assert.Matches($@"\| `{family}` \| {type} \|", section);
        }

        Assert.Equal(scrape.Types.Count, DocumentedFamily().Count(section));
    }

    [Fact]
    public void The_dashboard_is_grafana_json_with_a_unique_id_per_panel()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(DashboardPath));
        JsonElement root = dashboard.RootElement;
        int[] ids = [.. root.GetProperty("panels").EnumerateArray().Select(p => p.GetProperty("id").GetInt32())];

        Assert.Equal("pgproxy", root.GetProperty("uid").GetString());
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.All(root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row"), panel =>
        {
            Assert.True(panel.GetProperty("targets").GetArrayLength() > 0, panel.GetProperty("title").GetString());
            Assert.Equal("${datasource}", panel.GetProperty("datasource").GetProperty("uid").GetString());
        });
    }

    [GeneratedRegex(@"\bpgproxy_[a-z0-9_]+")]
    private static partial Regex SeriesName();

    [GeneratedRegex(@"^\| `pgproxy_[a-z0-9_]+` \|", RegexOptions.Multiline)]
    private static partial Regex DocumentedFamily();
}

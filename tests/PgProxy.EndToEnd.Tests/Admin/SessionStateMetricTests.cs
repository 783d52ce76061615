using System.Globalization;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Metrics;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>The sessions-by-state gauge of /metrics counts the states SHOW SESSIONS shows, console sessions left out.</summary>
[Collection(SharedPostgres.Name)]
public sealed class SessionStateMetricTests(PostgresFixture fixture) : IDisposable
{
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Fact]
    public async Task Pgproxy_sessions_state_counts_idle_active_and_idle_in_transaction_sessions()
    {
        string yaml = ConfigDirectory.OneInstance(fixture.Server, "metrics:\n  listen: {host: 127.0.0.1, port: 0}") + string.Create(CultureInfo.InvariantCulture, $"""

            admin:
              users: [{ConsoleSetup.User}]
              auth-file: {console.AuthFile}
            """);
        using ConfigDirectory directory = ConfigDirectory.Create(yaml);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        string url = await MetricsScraper.WaitForListeningAsync(proxy);
        await using RawPgClient idle = await SessionAsync(proxy);
        await using RawPgClient inTransaction = await SessionAsync(proxy);
        await using RawPgClient active = await SessionAsync(proxy);
        await inTransaction.SendAsync(RawPgClient.Query("BEGIN"));
        await inTransaction.ReadUntilReadyAsync();
        await active.SendAsync(RawPgClient.Query("SELECT pg_sleep(60)"));

        // A console session on the instance's port while scraping: it is not relayed, so not counted.
        await using RawPgClient consoleClient = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await consoleClient.SendAsync(RawPgClient.StartupPacket(3 << 16, ("user", ConsoleSetup.User), ("database", "pgproxy")));
        Assert.Equal('R', (await consoleClient.ReadMessageAsync()).Code);

        PrometheusScrape scrape = await MetricsScraper.ScrapeUntilAsync(
            url,
            s => State(s, "idle") == 1 && State(s, "idle_in_transaction") == 1 && State(s, "active") == 1,
            "one session in each state");

        Assert.Equal(0, State(scrape, "waiting"));
    }

    private static double State(PrometheusScrape scrape, string state) =>
        scrape.Series("pgproxy_sessions_state", ("listen", "proxy"), ("state", state)).Sum(sample => sample.Value);

    private static async Task<RawPgClient> SessionAsync(ProxyProcess proxy)
    {
        RawPgClient client = await RawPgClient.ConnectAsync("127.0.0.1", proxy.PortOf("proxy"));
        await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);
        return client;
    }
}

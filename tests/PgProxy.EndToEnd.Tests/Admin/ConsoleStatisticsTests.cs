using System.Globalization;
using PgProxy.Core.Configuration;
using PgProxy.EndToEnd.Tests.Infrastructure;
using PgProxy.EndToEnd.Tests.Relay;

namespace PgProxy.EndToEnd.Tests.Admin;

/// <summary>SHOW QUERIES and SHOW STATS read the per-query statistics of a known workload; RESET STATS clears them.</summary>
[Collection(SharedPostgres.Name)]
public sealed class ConsoleStatisticsTests(PostgresFixture fixture) : IDisposable
{
    private const int Executions = 7;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly ConsoleSetup console = ConsoleSetup.Create();

    public void Dispose() => console.Dispose();

    [Fact]
    public async Task N_executions_of_a_statement_give_calls_N_and_the_exact_row_sum_then_reset_clears_them()
    {
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(console.Config(fixture.Server));
        PsqlTarget target = ConsoleSetup.Target(proxy);
        await using (RawPgClient client = await RawPgClient.ConnectAsync(proxy.Host, proxy.Port))
        {
            await client.StartTrustSessionAsync(PostgresServer.TrustUser, PostgresServer.Database);

            // Constants differ, the fingerprint does not: one entry, 1 + 2 + ... + 7 rows.
            for (int n = 1; n <= Executions; n++)
            {
                await client.SendAsync(RawPgClient.Query(string.Create(CultureInfo.InvariantCulture, $"SELECT g FROM generate_series(1, {n}) g")));
                Assert.DoesNotContain(await client.ReadUntilReadyAsync(), m => m.Code == 'E');
            }
        }

        ConsoleOutput? queries = null;
        IReadOnlyList<string>? entry = null;
        await Waiting.WaitUntilAsync(
            async () =>
            {
                queries = await ConsolePsql.QueryAsync(target, "SHOW QUERIES ORDER BY calls");
                entry = queries.Where("query", "SELECT g FROM generate_series($1, $2) g").SingleOrDefault();
                return entry is not null && queries.Value(entry, "calls") == Executions.ToString(CultureInfo.InvariantCulture);
            },
            Deadline,
            $"SHOW QUERIES counts {Executions} calls");

        Assert.Equal(("proxy", PostgresServer.Database, PostgresServer.TrustUser), (queries!.Value(entry!, "instance"), queries.Value(entry!, "database"), queries.Value(entry!, "user")));
        Assert.Equal(Executions * (Executions + 1) / 2, ConsolePsql.Number(queries.Value(entry!, "rows")));
        Assert.Equal("0", queries.Value(entry!, "errors"));
        Assert.Matches("^[0-9a-f]{16}$", queries.Value(entry!, "fingerprint"));
        Assert.True(double.Parse(queries.Value(entry!, "max_ms"), CultureInfo.InvariantCulture) >= double.Parse(queries.Value(entry!, "min_ms"), CultureInfo.InvariantCulture));

        ConsoleOutput stats = await ConsolePsql.QueryAsync(target, "SHOW STATS");
        IReadOnlyList<string> instance = stats.Where("instance", "proxy").Single();
        Assert.True(ConsolePsql.Number(stats.Value(instance, "queries")) >= Executions);
        Assert.True(ConsolePsql.Number(stats.Value(instance, "transactions")) >= Executions);
        await Waiting.WaitUntilAsync(
            async () => (await ConsolePsql.QueryAsync(target, "SHOW STATS")).Where("instance", "proxy").Single()[1] == "1",
            Deadline,
            "the ended session is counted");

        ProcessResult reset = await Psql.RunAsync(target, "RESET STATS;\n");
        Assert.True(reset.Succeeded, reset.ToString());
        Assert.Empty((await ConsolePsql.QueryAsync(target, "SHOW QUERIES")).Where("query", "SELECT g FROM generate_series($1, $2) g"));
        Assert.Equal("0", (await ConsolePsql.QueryAsync(target, "SHOW STATS")).Where("instance", "proxy").Single()[3]);
    }

    [Fact]
    public async Task Show_rules_counts_what_each_rule_did_to_live_traffic_and_show_instances_how_many_there_are()
    {
        string yaml = string.Create(CultureInfo.InvariantCulture, $"""
            instances:
              - listen: {"{"}name: proxy, host: 127.0.0.1, port: 0{"}"}
                redirect: {"{"}name: postgresql, host: {fixture.Server.Host}, port: {fixture.Server.Port}{"}"}
                rules:
                  - {"{"}name: no-ddl, match: {"{"}statement: ddl{"}"}, refuse: {"{"}message: no DDL through the proxy{"}"}{"}"}
                  - {"{"}name: watch, match: {"{"}tables: [pg_class]{"}"}, log: true, mode: log-only{"}"}
            """);
        ProxyConfig config = ConfigLoader.Parse(yaml, Path.GetTempPath(), "config.yml") with { Admin = console.Admin() };
        await using ProxyHarness proxy = await ProxyHarness.StartAsync(config);
        ProcessResult relayed = await Psql.RunAsync(
            proxy.PsqlTarget(PostgresServer.TrustUser),
            "CREATE TABLE console_rules_t (a int);\nSELECT count(*) FROM pg_class;\nSELECT 1;\n",
            new PsqlOptions { OnErrorStop = false });
        Assert.Contains("no DDL through the proxy", relayed.StandardError, StringComparison.Ordinal);

        ConsoleOutput rules = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW RULES");
        ConsoleOutput instances = await ConsolePsql.QueryAsync(ConsoleSetup.Target(proxy), "SHOW INSTANCES");

        Assert.Equal(["proxy", "rule", "no-ddl", "1", "1", "0", "1", "0"], rules.Where("name", "no-ddl").Single());
        Assert.Equal(["proxy", "rule", "watch", "1", "0", "1", "0", "0"], rules.Where("name", "watch").Single());
        Assert.Equal("2", instances.Value(instances.Rows.Single(), "rules"));
    }
}

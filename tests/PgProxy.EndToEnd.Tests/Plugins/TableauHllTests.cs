using System.Globalization;
using Npgsql;
using PgProxy.EndToEnd.Tests.Host;
using PgProxy.EndToEnd.Tests.Infrastructure;

namespace PgProxy.EndToEnd.Tests.Plugins;

/// <summary>
/// The TableauHll plugin as its users run it: the real pgproxy process, the original proxy's configuration from a
/// directory of its own (the plugin is found by name among the plugins that ship with PgProxy), a table with hll
/// columns, and Tableau's queries through both protocols with md5 and SCRAM users.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class TableauHllTests(PostgresFixture fixture)
{
    // The two queries of the original plugin's tests (../shared/seed/tableau_hll.md), as Tableau sends them.
    private const string SeedQuery1 = """
        SELECT COUNT(DISTINCT "crm_data_source"."Set of Customers") AS "ctd:Set of Customers:ok"
        FROM "crm_dim"."crm_data_source" "crm_data_source"
        HAVING (COUNT(1) > 0);
        """;

    private const string SeedQuery2 = "BEGIN;declare \"SQL_CUR0x7fb46c01e3b0\" cursor with hold for SELECT CAST(\"crm_data_source\".\"Campaign Name\" AS TEXT) AS \"Campaign Name\",\n"
        + "  COUNT(DISTINCT \"crm_data_source\".\"Set of Unique Clicks\") AS \"usr:# Unique Customers (copy):ok\"\n"
        + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
        + "GROUP BY 1;fetch 2048 in \"SQL_CUR0x7fb46c01e3b0\"";

    /// <summary>The original proxy's configuration, as its README gives it, with the ports of this test.</summary>
    private string SeedConfiguration(string plugins = "  - tableau_hll") => Infrastructure.SeedConfiguration.For(fixture.Server, plugins);

    [Fact]
    public async Task The_original_configuration_rewrites_tableau_queries_to_the_right_answer()
    {
        Assert.True(fixture.Server.HasHll, "the hll extension is not installed: apt-get install postgresql-15-hll");
        await CreateCrmTableAsync();
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfiguration());
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        long customers = await DirectScalarAsync("""SELECT hll_cardinality(hll_union_agg("Set of Customers"))::bigint FROM crm_dim.crm_data_source""");
        var rowCount = await DirectScalarAsync("SELECT count(*) FROM crm_dim.crm_data_source");
        Assert.NotEqual(rowCount, customers);
        PostgresException unrewritten = await Assert.ThrowsAsync<PostgresException>(() => DirectScalarAsync(SeedQuery1));
        Assert.Equal("42883", unrewritten.SqlState);

        // Extended protocol (Npgsql), md5 and SCRAM users.
        foreach ((string user, string password) in new[] { (PostgresServer.Md5User, PostgresServer.Md5Password), (PostgresServer.ScramUser, PostgresServer.ScramPassword) })
        {
            await using var connection = new NpgsqlConnection(ProxyConnectionString(proxy, user, password));
            await connection.OpenAsync();
            await using var query = new NpgsqlCommand(SeedQuery1, connection);
            Assert.Equal(customers, Convert.ToInt64(await query.ExecuteScalarAsync(), CultureInfo.InvariantCulture));
        }

        // Simple protocol, the multi-statement cursor query in one Query message (psql -c), SCRAM user.
        long clicksCampaign0 = await DirectScalarAsync("""SELECT hll_cardinality(hll_union_agg("Set of Unique Clicks"))::bigint FROM crm_dim.crm_data_source WHERE "Campaign Name" = 'campaign 0'""");
        long clicksCampaign1 = await DirectScalarAsync("""SELECT hll_cardinality(hll_union_agg("Set of Unique Clicks"))::bigint FROM crm_dim.crm_data_source WHERE "Campaign Name" = 'campaign 1'""");
        ProcessResult psql = await Psql.RunAsync(
            new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.ScramUser, PostgresServer.Database, PostgresServer.ScramPassword),
            input: "",
            new PsqlOptions { Arguments = ["-A", "-t", "-F", "|", "-c", SeedQuery2] });
        Assert.True(psql.Succeeded, psql.ToString());
        Assert.NotEqual(clicksCampaign0, clicksCampaign1);
        Assert.Equal(
            ["BEGIN", "DECLARE CURSOR", $"campaign 0|{clicksCampaign0}", $"campaign 1|{clicksCampaign1}"],
            psql.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));

        string generalLog = await File.ReadAllTextAsync(Path.Combine(directory.Path, "logs", "general.log"));
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "plugins", "tableau_hll", "tableau_hll.dll"), generalLog, StringComparison.Ordinal);
        string interceptLog = await File.ReadAllTextAsync(Path.Combine(directory.Path, "logs", "intercept.log"));
        Assert.Contains("hll_cardinality(hll_union_agg(\"crm_data_source\".\"Set of Unique Clicks\"))::bigint", interceptLog, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tableau_queries_and_a_rule_work_through_transaction_pooling_on_one_shared_connection()
    {
        Assert.True(fixture.Server.HasHll, "the hll extension is not installed: apt-get install postgresql-15-hll");
        await CreateCrmTableAsync();
        string pooled = SeedConfiguration().Replace(
            "    intercept:\n",
            """
                auth: {auth-file: users.txt}
                pool: {mode: transaction, size: 1}
                rules:
                  - name: tag-tableau
                    match: {statement: [select]}
                    tag: 'source=tableau'
                    continue: true
                intercept:

            """.Replace("\r", "", StringComparison.Ordinal),
            StringComparison.Ordinal);
        Assert.Contains("mode: transaction", pooled, StringComparison.Ordinal);
        using ConfigDirectory directory = ConfigDirectory.Create(pooled);
        await Pooling.PoolingClients.WriteAuthFileAsync(fixture.Server, Path.Combine(directory.Path, "users.txt"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        long customers = await DirectScalarAsync("""SELECT hll_cardinality(hll_union_agg("Set of Customers"))::bigint FROM crm_dim.crm_data_source""");

        // Two clients on the pool's one connection, each statement rewritten (the plugin's metadata query runs on the
        // linked connection) and tagged by the rule first.
        await using var first = new NpgsqlConnection(ProxyConnectionString(proxy, PostgresServer.ScramUser, PostgresServer.ScramPassword));
        await using var second = new NpgsqlConnection(ProxyConnectionString(proxy, PostgresServer.ScramUser, PostgresServer.ScramPassword));
        await first.OpenAsync();
        await second.OpenAsync();
        var backends = new HashSet<int>();
        for (int round = 0; round < 3; round++)
        {
            foreach (NpgsqlConnection client in new[] { first, second })
            {
                await using var query = new NpgsqlCommand(SeedQuery1, client);
                Assert.Equal(customers, Convert.ToInt64(await query.ExecuteScalarAsync(), CultureInfo.InvariantCulture));
                await using var seen = new NpgsqlCommand("SELECT current_query(), pg_backend_pid()", client);
                await using NpgsqlDataReader reader = await seen.ExecuteReaderAsync();
                Assert.True(await reader.ReadAsync());
                Assert.StartsWith("/* source=tableau */", reader.GetString(0), StringComparison.Ordinal);
                backends.Add(reader.GetInt32(1));
            }
        }

        Assert.Single(backends);

        // The simple protocol's cursor query, which leaves its transaction open: psql holds the connection meanwhile.
        ProcessResult psql = await Psql.RunAsync(
            new PsqlTarget("127.0.0.1", proxy.PortOf("proxy"), PostgresServer.ScramUser, PostgresServer.Database, PostgresServer.ScramPassword),
            input: "",
            new PsqlOptions { Arguments = ["-A", "-t", "-F", "|", "-c", SeedQuery2], Environment = new Dictionary<string, string?> { ["PGSSLMODE"] = "disable" } });
        Assert.True(psql.Succeeded, psql.ToString());
        Assert.Equal(4, psql.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        await using var after = new NpgsqlCommand(SeedQuery1, first);
        Assert.Equal(customers, Convert.ToInt64(await after.ExecuteScalarAsync(), CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task A_named_prepared_statement_with_parameters_is_rewritten()
    {
        Assert.True(fixture.Server.HasHll, "the hll extension is not installed: apt-get install postgresql-15-hll");
        await CreateCrmTableAsync();
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfiguration());
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        const string sql = """
            SELECT "c"."Campaign Name", count(DISTINCT "c"."Set of Customers") AS reach
            FROM crm_dim.crm_data_source AS "c" WHERE "c"."Campaign Name" = $1 GROUP BY 1
            """;
        long expected = await DirectScalarAsync("""SELECT hll_cardinality(hll_union_agg("Set of Customers"))::bigint FROM crm_dim.crm_data_source WHERE "Campaign Name" = 'campaign 1'""");

        await using var connection = new NpgsqlConnection(ProxyConnectionString(proxy, PostgresServer.ScramUser, PostgresServer.ScramPassword));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = "campaign 1" });
        await command.PrepareAsync();
        for (int run = 0; run < 3; run++)
        {
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(("campaign 1", expected), (reader.GetString(0), reader.GetInt64(1)));
        }
    }

    [Fact]
    public async Task A_table_changed_after_the_column_types_expire_is_seen_as_it_now_is()
    {
        Assert.True(fixture.Server.HasHll, "the hll extension is not installed: apt-get install postgresql-15-hll");
        await DirectExecuteAsync("""
            DROP TABLE IF EXISTS public.tableau_hll_altered;
            CREATE TABLE public.tableau_hll_altered (visitors text);
            INSERT INTO public.tableau_hll_altered VALUES ('a'), ('b'), ('b');
            GRANT SELECT ON public.tableau_hll_altered TO md5_user;
            """);
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfiguration("  - name: tableau_hll\n    settings:\n      metadata-ttl: 200ms"));
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);
        await using var connection = new NpgsqlConnection(ProxyConnectionString(proxy, PostgresServer.Md5User, PostgresServer.Md5Password));
        await connection.OpenAsync();
        async Task<long> CountThroughProxyAsync()
        {
            await using var command = new NpgsqlCommand("SELECT count(DISTINCT visitors) AS n FROM tableau_hll_altered", connection);
            return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }

        Assert.Equal(2L, await CountThroughProxyAsync());

        await DirectExecuteAsync("""
            ALTER TABLE public.tableau_hll_altered ALTER COLUMN visitors TYPE hll USING hll_add(hll_empty(), hll_hash_text(visitors));
            INSERT INTO public.tableau_hll_altered SELECT hll_add_agg(hll_hash_integer(n)) FROM generate_series(1, 50) n;
            """);
        long expected = await DirectScalarAsync("SELECT hll_cardinality(hll_union_agg(visitors))::bigint FROM public.tableau_hll_altered");
        Assert.True(expected > 3, $"the hll sets hold {expected} values");

        // Until the 200 ms pass, the cached types say "text" and the server refuses count(DISTINCT) on hll.
        long seen = 0;
        await Waiting.WaitUntilAsync(
            async () => (seen = await CountThroughProxyAsync()) == expected,
            TimeSpan.FromSeconds(15),
            $"the proxy sees the column as hll (last answer {seen}, expected {expected})");
    }

    [Fact]
    public async Task A_plugin_of_the_same_name_in_the_plugin_directory_runs_instead_and_the_log_says_which()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfiguration());
        Directory.CreateDirectory(Path.Combine(directory.Path, "plugins"));
        string ownPlugin = Path.Combine(directory.Path, "plugins", "tableau_hll.cs");
        await File.WriteAllTextAsync(ownPlugin, """
            public static class OwnTableauHll
            {
                public static string RewriteQuery(string query) => query.Replace("'which plugin'", "'the plugin directory''s'");
            }
            """);
        await using ProxyProcess proxy = await ProxyProcess.StartAsync(directory.ConfigFile, instances: 1);

        await using var connection = new NpgsqlConnection(ProxyConnectionString(proxy, PostgresServer.TrustUser, null));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT 'which plugin'", connection);

        Assert.Equal("the plugin directory's", await command.ExecuteScalarAsync());
        string generalLog = await File.ReadAllTextAsync(Path.Combine(directory.Path, "logs", "general.log"));
        Assert.Contains(ownPlugin, generalLog, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_plugin_settings_are_refused_by_check_naming_the_line()
    {
        using ConfigDirectory directory = ConfigDirectory.Create(SeedConfiguration("  - name: tableau_hll\n    settings:\n      metadata-tll: 5s"));

        ProcessResult check = await ProxyProcess.RunToEndAsync("check", "--config", directory.ConfigFile);

        Assert.NotEqual(0, check.ExitCode);
        Assert.Contains("plugin \"tableau_hll\" (config line 2) settings: unknown setting 'metadata-tll'", check.StandardError + check.StandardOutput, StringComparison.Ordinal);
    }

    private static string ProxyConnectionString(ProxyProcess proxy, string user, string? password) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = proxy.PortOf("proxy"),
            Username = user,
            Password = password,
            Database = PostgresServer.Database,
            Pooling = false,
        }.ConnectionString;

    /// <summary>crm_dim.crm_data_source as the seed's queries expect it: six rows of hll sets over overlapping ranges of different sizes, in two campaigns.</summary>
    private Task CreateCrmTableAsync() => DirectExecuteAsync("""
        CREATE SCHEMA IF NOT EXISTS crm_dim;
        DROP TABLE IF EXISTS crm_dim.crm_data_source;
        CREATE TABLE crm_dim.crm_data_source ("Campaign Name" text, "Set of Customers" hll, "Set of Unique Clicks" hll);
        INSERT INTO crm_dim.crm_data_source
        SELECT 'campaign ' || (g % 2), hll_add_agg(hll_hash_integer(c)), hll_add_agg(hll_hash_integer(c * 7))
        FROM generate_series(1, 6) AS g, LATERAL generate_series(g * 100, g * 100 + 50 * g) AS c
        GROUP BY g;
        GRANT USAGE ON SCHEMA crm_dim TO md5_user, scram_user;
        GRANT SELECT ON crm_dim.crm_data_source TO md5_user, scram_user;
        """);

    private async Task DirectExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<long> DirectScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(fixture.Server.ConnectionString(PostgresServer.Superuser));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}

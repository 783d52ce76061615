using System.Net;
using PgProxy.Core.Configuration;
using PgProxy.Core.Rules;
using PgProxy.Sql;

namespace PgProxy.Core.Tests.Rules;

/// <summary>Every match key, alone and together: a rule matches when every key it gives holds.</summary>
public sealed class RuleMatchTests
{
    private static bool Matches(string match, string sql, RuleSubject? subject = null, QueryProtocol protocol = QueryProtocol.Simple) =>
        !RuleSets.Build($"- {{name: r, match: {match}, tag: t}}").Evaluate(sql, subject, protocol).IsUnchanged;

    [Theory]
    [InlineData("SELECT 1", "select")]
    [InlineData("VALUES (1)", "select")]
    [InlineData("TABLE orders", "select")]
    [InlineData("SELECT 1 INTO t", "ddl")]
    [InlineData("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "insert")]
    [InlineData("UPDATE t SET a = 1", "update")]
    [InlineData("DELETE FROM t", "delete")]
    [InlineData("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "merge")]
    [InlineData("CREATE TABLE t (id int)", "ddl")]
    [InlineData("ALTER TABLE t ADD COLUMN b int", "ddl")]
    [InlineData("DROP TABLE t", "ddl")]
    [InlineData("TRUNCATE t", "ddl")]
    [InlineData("GRANT SELECT ON t TO app", "ddl")]
    [InlineData("CREATE INDEX ON t (a)", "ddl")]
    [InlineData("CREATE TABLE u AS SELECT 1", "ddl")]
    [InlineData("COPY t FROM STDIN", "copy")]
    [InlineData("COPY (SELECT 1) TO STDOUT", "copy")]
    [InlineData("BEGIN", "transaction")]
    [InlineData("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction")]
    [InlineData("COMMIT", "transaction")]
    [InlineData("ROLLBACK TO SAVEPOINT s", "transaction")]
    [InlineData("SAVEPOINT s", "transaction")]
    [InlineData("SET search_path = x", "set")]
    [InlineData("RESET ALL", "set")]
    [InlineData("SET TRANSACTION READ ONLY", "set")]
    [InlineData("SHOW work_mem", "utility")]
    [InlineData("EXPLAIN SELECT 1", "utility")]
    [InlineData("DO $$BEGIN END$$", "utility")]
    [InlineData("VACUUM t", "utility")]
    [InlineData("LISTEN x", "utility")]
    [InlineData("PREPARE p AS SELECT 1", "utility")]
    [InlineData("DISCARD ALL", "utility")]
    public void Statement_kinds_come_from_the_parser(string sql, string kind)
    {
        foreach (string candidate in RulesConfigReader.StatementKindNames.Keys)
        {
            Assert.Equal(candidate == kind, Matches($"{{statement: [{candidate}]}}", sql));
        }
    }

    [Theory]
    [InlineData("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")]
    [InlineData("EXPLAIN ANALYZE DELETE FROM t")]
    [InlineData("COPY (DELETE FROM t RETURNING *) TO STDOUT")]
    [InlineData("PREPARE p AS DELETE FROM t")]
    public void A_statement_that_holds_a_delete_is_a_delete_too(string sql) => Assert.True(Matches("{statement: [delete]}", sql));

    [Fact]
    public void A_subquery_does_not_make_a_delete_a_select() => Assert.False(Matches("{statement: [select]}", "DELETE FROM t WHERE id IN (SELECT id FROM u)"));

    [Fact]
    public void A_statement_the_parser_cannot_read_matches_no_statement_rule() => Assert.False(Matches("{statement: [ddl, select, utility]}", "CREAT TABLE t (id int)"));

    [Theory]
    [InlineData("app", true)]
    [InlineData("App", false)]
    [InlineData("/^ap+$/", true)]
    [InlineData("/^x/", false)]
    public void User_is_an_exact_name_or_a_pattern(string user, bool matches) => Assert.Equal(matches, Matches($"{{user: ['{user}']}}", "SELECT 1"));

    [Fact]
    public void Database_and_application_name_are_matched_like_user()
    {
        var tableau = new RuleSubject("app", "shop", "Tableau 2024.1", IPAddress.Loopback);

        Assert.True(Matches("{database: [shop, crm]}", "SELECT 1", tableau));
        Assert.False(Matches("{database: [crm]}", "SELECT 1", tableau));
        Assert.True(Matches("{application-name: ['/^Tableau/']}", "SELECT 1", tableau));
        Assert.False(Matches("{application-name: ['/^Tableau/']}", "SELECT 1", RuleSets.App));
        Assert.False(Matches("{application-name: [psql]}", "SELECT 1", tableau with { ApplicationName = null }));
    }

    [Theory]
    [InlineData("10.1.2.3", "[10.0.0.0/8]", true)]
    [InlineData("10.1.2.3", "[10.1.2.3]", true)]
    [InlineData("11.1.2.3", "[10.0.0.0/8]", false)]
    [InlineData("::ffff:10.1.2.3", "[10.0.0.0/8]", true)]
    [InlineData("10.1.2.3", "['::ffff:10.0.0.0/104']", true)]
    [InlineData("2001:db8::5", "['2001:db8::/32']", true)]
    [InlineData("2001:db9::5", "['2001:db8::/32', 192.168.0.0/16]", false)]
    [InlineData("::1", "[127.0.0.0/8]", false)]
    public void Client_is_a_cidr_for_ipv4_and_ipv6(string client, string networks, bool matches) =>
        Assert.Equal(matches, Matches($"{{client: {networks}}}", "SELECT 1", RuleSets.App with { Client = IPAddress.Parse(client) }));

    [Fact]
    public void A_client_without_an_address_matches_no_network() =>
        Assert.False(Matches("{client: [0.0.0.0/0]}", "SELECT 1", RuleSets.App with { Client = null }));

    [Fact]
    public void Protocol_is_simple_or_extended_and_both_when_absent()
    {
        Assert.True(Matches("{protocol: simple}", "SELECT 1", protocol: QueryProtocol.Simple));
        Assert.False(Matches("{protocol: simple}", "SELECT 1", protocol: QueryProtocol.Extended));
        Assert.True(Matches("{protocol: extended}", "SELECT 1", protocol: QueryProtocol.Extended));
        Assert.True(Matches("{}", "SELECT 1", protocol: QueryProtocol.Extended));
    }

    [Theory]
    [InlineData("orders", "SELECT * FROM orders", true)]
    [InlineData("orders", "SELECT * FROM sales.orders", true)]
    [InlineData("public.orders", "SELECT * FROM orders", true)]
    [InlineData("public.orders", "SELECT * FROM public.orders", true)]
    [InlineData("public.orders", "SELECT * FROM sales.orders", false)]
    [InlineData("sales.orders", "SELECT * FROM orders", false)]
    [InlineData("orders", "SELECT * FROM \"Orders\"", false)]
    [InlineData("'\"Orders\"'", "SELECT * FROM \"Orders\"", true)]
    [InlineData("orders", "SELECT * FROM ORDERS", true)]
    [InlineData("orders", "SELECT * FROM customers c JOIN orders o ON o.c = c.id", true)]
    [InlineData("orders", "SELECT * FROM customers WHERE id IN (SELECT c FROM orders)", true)]
    [InlineData("orders", "INSERT INTO orders SELECT * FROM staging", true)]
    [InlineData("orders", "UPDATE orders SET a = 1", true)]
    [InlineData("orders", "DELETE FROM orders", true)]
    [InlineData("orders", "MERGE INTO orders o USING s ON o.id = s.id WHEN MATCHED THEN DELETE", true)]
    [InlineData("orders", "COPY orders TO STDOUT", true)]
    [InlineData("orders", "TRUNCATE orders", true)]
    [InlineData("orders", "DROP TABLE IF EXISTS public.orders", true)]
    [InlineData("orders", "ALTER TABLE orders ADD COLUMN x int", true)]
    [InlineData("orders", "LOCK TABLE orders", true)]
    [InlineData("orders", "SELECT 'orders' FROM customers", false)]
    [InlineData("orders", "SELECT orders FROM customers", false)]
    public void Tables_are_the_relations_a_statement_names(string table, string sql, bool matches) =>
        Assert.Equal(matches, Matches($"{{tables: [{table}]}}", sql));

    [Fact]
    public void Fingerprint_is_the_statement_s_own_whatever_its_constants()
    {
        string fingerprint = PostgresParser.Fingerprint("SELECT * FROM orders WHERE id = 1").Text;

        Assert.True(Matches($"{{fingerprint: {fingerprint}}}", "select *  from orders where id = 42 -- again"));
        Assert.False(Matches($"{{fingerprint: {fingerprint}}}", "SELECT * FROM orders WHERE customer = 1"));
        Assert.True(Matches($"{{fingerprint: [0000000000000000, '{fingerprint.ToUpperInvariant()}']}}", "SELECT * FROM orders WHERE id = 7"));
    }

    [Fact]
    public void Query_is_a_regular_expression_on_the_statement_text()
    {
        Assert.True(Matches("{query: 'COUNT\\(DISTINCT'}", "SELECT COUNT(DISTINCT a) FROM t"));
        Assert.False(Matches("{query: 'COUNT\\(DISTINCT'}", "SELECT count(DISTINCT a) FROM t"));
        Assert.True(Matches("{query: '(?i)COUNT\\(DISTINCT'}", "SELECT count(DISTINCT a) FROM t"));
    }

    [Fact]
    public void Every_key_given_must_hold()
    {
        const string match = "{statement: [delete], user: [app], database: [shop], client: [10.0.0.0/8], protocol: simple, tables: [orders], query: 'WHERE'}";

        Assert.True(Matches(match, "DELETE FROM orders WHERE id = 1"));
        Assert.False(Matches(match, "DELETE FROM orders"));
        Assert.False(Matches(match, "DELETE FROM lines WHERE id = 1"));
        Assert.False(Matches(match, "UPDATE orders SET a = 1 WHERE id = 1"));
        Assert.False(Matches(match, "DELETE FROM orders WHERE id = 1", RuleSets.App with { User = "admin" }));
        Assert.False(Matches(match, "DELETE FROM orders WHERE id = 1", RuleSets.App with { Database = "crm" }));
        Assert.False(Matches(match, "DELETE FROM orders WHERE id = 1", RuleSets.App with { Client = IPAddress.Loopback }));
        Assert.False(Matches(match, "DELETE FROM orders WHERE id = 1", protocol: QueryProtocol.Extended));
    }

    [Fact]
    public void An_empty_match_matches_every_statement_but_not_an_empty_query()
    {
        Assert.True(Matches("{}", "SELECT 1"));
        Assert.False(Matches("{}", "  \n"));
        Assert.False(Matches("{}", " ; ; "));
    }
}

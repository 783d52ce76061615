using PgProxy.Plugins.TableauHll.Analysis;
using Plugin = PgProxy.Plugins.TableauHll.TableauHll;

namespace PgProxy.Plugins.Tests.TableauHll;

public sealed class RewriteTests
{
    private static readonly ColumnTypes Crm = new ColumnTypes()
        .Table("crm_dim", "crm_data_source", ("Set of Customers", true), ("Set of Unique Clicks", true), ("Campaign Name", false), ("customer", false))
        .Table(null, "events", ("visitors", true), ("day", false), ("campaign", false))
        .Table("public", "campaigns", ("campaign", false), ("visitors", false), ("title", false));

    private static string Rewrite(string sql, ColumnTypes? types = null) => Plugin.Apply(sql, QueryAnalyzer.Analyze(sql), types ?? Crm);

    [Fact]
    public void Rewrites_the_first_query_of_the_original_plugin()
    {
        const string input = """
            SELECT COUNT(DISTINCT "crm_data_source"."Set of Customers") AS "ctd:Set of Customers:ok"
            FROM "crm_dim"."crm_data_source" "crm_data_source"
            HAVING (COUNT(1) > 0);
            """;

        Assert.Equal(
            """
            SELECT hll_cardinality(hll_union_agg("crm_data_source"."Set of Customers"))::bigint AS "ctd:Set of Customers:ok"
            FROM "crm_dim"."crm_data_source" "crm_data_source"
            HAVING (COUNT(1) > 0);
            """,
            Rewrite(input));
    }

    [Fact]
    public void Rewrites_the_cursor_of_a_multi_statement_query_and_leaves_the_other_statements()
    {
        const string input = "BEGIN;declare \"SQL_CUR0x7fb46c01e3b0\" cursor with hold for SELECT CAST(\"crm_data_source\".\"Campaign Name\" AS TEXT) AS \"Campaign Name\",\n"
            + "  COUNT(DISTINCT \"crm_data_source\".\"Set of Unique Clicks\") AS \"usr:# Unique Customers (copy):ok\"\n"
            + "FROM \"crm_dim\".\"crm_data_source\" \"crm_data_source\"\n"
            + "GROUP BY 1;fetch 2048 in \"SQL_CUR0x7fb46c01e3b0\"";

        Assert.Equal(
            input.Replace(
                "COUNT(DISTINCT \"crm_data_source\".\"Set of Unique Clicks\")",
                "hll_cardinality(hll_union_agg(\"crm_data_source\".\"Set of Unique Clicks\"))::bigint",
                StringComparison.Ordinal),
            Rewrite(input));
    }

    [Theory]
    [InlineData("SELECT count(DISTINCT CAST(e.visitors AS TEXT)) AS n FROM events e")]
    [InlineData("SELECT count(DISTINCT e.visitors::text) AS n FROM events e")]
    [InlineData("SELECT count(DISTINCT e.visitors::pg_catalog.text) AS n FROM events e")]
    [InlineData("SELECT count( DISTINCT  e.visitors ) AS n FROM events e")]
    [InlineData("SELECT pg_catalog.count(DISTINCT e.visitors) AS n FROM events e")]
    public void Rewrites_every_spelling_of_a_distinct_count_of_an_hll_column(string input)
    {
        Assert.Equal("SELECT hll_cardinality(hll_union_agg(e.visitors))::bigint AS n FROM events e", Rewrite(input));
    }

    [Theory]
    [InlineData("SELECT count(DISTINCT visitors) AS n FROM events", "visitors")]
    [InlineData("SELECT count(DISTINCT events.visitors) AS n FROM events", "events.visitors")]
    [InlineData("SELECT count(DISTINCT \"events\".\"visitors\") AS n FROM \"events\"", "\"events\".\"visitors\"")]
    [InlineData("SELECT count(DISTINCT s.\"Set of Customers\") AS n FROM crm_dim.crm_data_source AS s", "s.\"Set of Customers\"")]
    [InlineData("SELECT count(DISTINCT crm_data_source.\"Set of Customers\") AS n FROM crm_dim.crm_data_source", "crm_data_source.\"Set of Customers\"")]
    [InlineData("SELECT count(DISTINCT crm_dim.crm_data_source.\"Set of Customers\") AS n FROM crm_dim.crm_data_source", "crm_dim.crm_data_source.\"Set of Customers\"")]
    [InlineData("SELECT count(DISTINCT e.visitors) AS n FROM public.campaigns c JOIN events e ON e.campaign = c.campaign", "e.visitors")]
    [InlineData("SELECT count(DISTINCT e.visitors) AS n FROM public.campaigns c LEFT JOIN (events e JOIN crm_dim.crm_data_source s ON true) ON true", "e.visitors")]
    [InlineData("SELECT count(DISTINCT x.v) AS n FROM (SELECT visitors AS v FROM events) x", "x.v")]
    [InlineData("SELECT count(DISTINCT x.visitors) AS n FROM (SELECT * FROM events) x", "x.visitors")]
    [InlineData("SELECT count(DISTINCT x.a) AS n FROM (SELECT visitors FROM events) x(a)", "x.a")]
    [InlineData("WITH w AS (SELECT day, visitors FROM events) SELECT count(DISTINCT w.visitors) AS n FROM w", "w.visitors")]
    [InlineData("WITH w(d, v) AS (SELECT day, visitors FROM events) SELECT count(DISTINCT v) AS n FROM w", "v")]
    [InlineData("WITH w AS (SELECT e.* FROM events e) SELECT count(DISTINCT ww.visitors) AS n FROM w ww", "ww.visitors")]
    public void Resolves_the_column_through_the_from_scope(string input, string column)
    {
        string expected = input.Replace($"count(DISTINCT {column})", $"hll_cardinality(hll_union_agg({column}))::bigint", StringComparison.Ordinal);
        Assert.NotEqual(input, expected);

        Assert.Equal(expected, Rewrite(input));
    }

    [Fact]
    public void Resolves_each_subquery_in_its_own_scope()
    {
        const string input = "SELECT c.title, (SELECT count(DISTINCT visitors) FROM events e WHERE e.campaign = c.campaign) AS reach,"
            + " count(DISTINCT c.visitors) AS plain FROM public.campaigns c GROUP BY c.title, c.campaign";

        // The inner visitors is events.visitors (hll); the outer c.visitors is campaigns.visitors (not hll).
        Assert.Equal(
            input.Replace("count(DISTINCT visitors)", "hll_cardinality(hll_union_agg(visitors))::bigint AS count", StringComparison.Ordinal),
            Rewrite(input));
    }

    [Fact]
    public void An_unqualified_column_belongs_to_the_innermost_select_that_has_it()
    {
        const string input = "SELECT (SELECT count(DISTINCT visitors) FROM public.campaigns) AS n FROM events";

        // campaigns.visitors is not hll, and shadows events.visitors inside the subquery.
        Assert.Same(input, Rewrite(input));
    }

    [Fact]
    public void Names_an_unnamed_select_list_entry_count_as_postgresql_would()
    {
        Assert.Equal(
            "SELECT hll_cardinality(hll_union_agg(visitors))::bigint AS count FROM events",
            Rewrite("SELECT count(DISTINCT visitors) FROM events"));
    }

    [Fact]
    public void Rewrites_in_having_and_order_by_and_several_statements()
    {
        const string input = "SELECT day FROM events GROUP BY day HAVING count(DISTINCT visitors) > 10 ORDER BY count(DISTINCT visitors) DESC;"
            + " SELECT count(DISTINCT \"Set of Customers\") AS n FROM crm_dim.crm_data_source";

        string expected = input
            .Replace("count(DISTINCT visitors)", "hll_cardinality(hll_union_agg(visitors))::bigint", StringComparison.Ordinal)
            .Replace("count(DISTINCT \"Set of Customers\")", "hll_cardinality(hll_union_agg(\"Set of Customers\"))::bigint", StringComparison.Ordinal);
        Assert.Equal(expected, Rewrite(input));
    }

    [Theory]
    [InlineData("SELECT 'count(DISTINCT visitors)' FROM events")]
    [InlineData("SELECT 1 FROM events -- count(DISTINCT visitors)")]
    [InlineData("SELECT 1 /* count(DISTINCT visitors) */ FROM events")]
    [InlineData("SELECT $body$ SELECT count(DISTINCT visitors) FROM events $body$")]
    [InlineData("CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS $$ SELECT count(DISTINCT visitors) FROM events $$")]
    [InlineData("SELECT count(DISTINCT campaign) FROM events")]
    [InlineData("SELECT count(DISTINCT c.visitors) FROM public.campaigns c")]
    [InlineData("SELECT count(visitors) FROM events")]
    [InlineData("SELECT count(DISTINCT visitors) FILTER (WHERE day > 1) FROM events")]
    [InlineData("SELECT count(DISTINCT visitors::varchar) FROM events")]
    [InlineData("SELECT count(DISTINCT visitors) FROM nowhere")]
    [InlineData("SELECT count(DISTINCT x.visitors) FROM (SELECT visitors || 'a' AS visitors FROM events) x")]
    [InlineData("SELECT count(DISTINCT visitors) FROM events WHERE")]
    [InlineData("SELECT count(DISTINCT z.visitors) FROM events e")]
    public void Leaves_lookalikes_and_other_columns_byte_for_byte(string input)
    {
        Assert.Same(input, Rewrite(input));
    }

    [Theory]
    [InlineData(50)]
    [InlineData(5000)]
    public void A_deeply_nested_query_is_analyzed_or_left_alone_but_never_overflows(int depth)
    {
        string nested = string.Concat(Enumerable.Repeat("1 + (", depth)) + "1" + new string(')', depth);
        string input = $"SELECT count(DISTINCT visitors) AS n, {nested} AS deep FROM events";

        string result = Rewrite(input);

        if (depth < QueryAnalyzer.MaxDepth / 4)
        {
            Assert.StartsWith("SELECT hll_cardinality(hll_union_agg(visitors))::bigint AS n, ", result, StringComparison.Ordinal);
        }
        else
        {
            Assert.Same(input, result);
        }
    }

    [Fact]
    public async Task A_long_dashboard_query_parsed_off_the_callers_thread_is_still_rewritten()
    {
        // Forty parenthesized predicates: more operators and brackets than PgProxy.Sql parses on the caller's thread,
        // so the analysis awaits the parser's deep-stack thread instead of blocking.
        string predicates = string.Join(" AND ", Enumerable.Range(1, 40).Select(i => $"(day <> {i})"));
        string input = $"SELECT count(DISTINCT visitors) AS n FROM events WHERE {predicates}";

        QueryAnalysis analysis = await QueryAnalyzer.AnalyzeAsync(input, CancellationToken.None);

        Assert.Equal(
            input.Replace("count(DISTINCT visitors)", "hll_cardinality(hll_union_agg(visitors))::bigint", StringComparison.Ordinal),
            Plugin.Apply(input, analysis, Crm));
    }

    [Fact]
    public void Keeps_multibyte_text_around_the_call()
    {
        const string input = "SELECT 'héllo 😀' AS greeting, count(DISTINCT \"événements\".visitors) AS n /* ünïcode */ FROM events \"événements\"";

        Assert.Equal(
            input.Replace("count(DISTINCT \"événements\".visitors)", "hll_cardinality(hll_union_agg(\"événements\".visitors))::bigint", StringComparison.Ordinal),
            Rewrite(input));
    }

    [Fact]
    public void A_database_without_hll_columns_is_left_alone()
    {
        const string input = "SELECT count(DISTINCT visitors) FROM events";
        var noHll = new ColumnTypes().Table(null, "events", ("visitors", false));

        Assert.Same(input, Rewrite(input, noHll));
    }
}

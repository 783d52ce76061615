namespace PgProxy.Sql.Tests;

public sealed class SplitTests
{
    private const string Several =
        "SELECT 1; SELECT ';' AS \"a;b\" ;  /* c; */ SELECT $fn$a;b$fn$  ;\n-- x;\n SELECT 'é😀'; ; SELECT 2";

    [Fact]
    public void Semicolons_in_strings_identifiers_comments_and_dollar_quotes_do_not_split()
    {
        string[] statements = [.. PostgresParser.Split(Several).Select(span => span.TextOf(Several))];

        Assert.Equal(["SELECT 1", "SELECT ';' AS \"a;b\"", "SELECT $fn$a;b$fn$", "SELECT 'é😀'", "SELECT 2"], statements);
    }

    [Fact]
    public void The_scanner_splits_the_same_way_and_also_splits_invalid_sql()
    {
        Assert.Equal(PostgresParser.Split(Several), PostgresParser.SplitWithScanner(Several));

        const string broken = "SELECT FROM WHERE ; SELECT 2";
        Assert.Throws<SqlParseException>(() => PostgresParser.Split(broken));
        string[] statements = [.. PostgresParser.SplitWithScanner(broken).Select(span => span.TextOf(broken))];
        Assert.Equal(["SELECT FROM WHERE", "SELECT 2"], statements);
    }

    [Fact]
    public void The_scanner_drops_a_statement_without_any_keyword()
    {
        // libpg_query's scanner split counts a statement only once it has seen a keyword.
        const string sql = "SELEC 1; SELECT 2";

        Assert.Equal([new SqlStatementSpan(9, 8)], PostgresParser.SplitWithScanner(sql));
    }

    [Fact]
    public void A_rule_body_with_semicolons_is_one_statement()
    {
        const string sql = "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3";

        string[] statements = [.. PostgresParser.Split(sql).Select(span => span.TextOf(sql))];

        Assert.Equal(["CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)", "SELECT 3"], statements);
    }

    [Fact]
    public void Spans_are_string_indexes_after_multibyte_text()
    {
        const string sql = "SELECT 'ü€😀';SELECT 2";

        IReadOnlyList<SqlStatementSpan> spans = PostgresParser.Split(sql);

        Assert.Equal([new SqlStatementSpan(0, 13), new SqlStatementSpan(14, 8)], spans);
        Assert.Equal(sql.Length, spans[1].End);
    }

    [Fact]
    public void Blank_text_has_no_statements()
    {
        Assert.Empty(PostgresParser.Split(""));
        Assert.Empty(PostgresParser.Split(" ; -- nothing\n"));
    }
}

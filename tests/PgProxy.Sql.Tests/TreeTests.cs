using PgQuery;

namespace PgProxy.Sql.Tests;

public sealed class TreeTests
{
    [Fact]
    public void Queries_differing_only_in_constants_and_formatting_share_a_fingerprint()
    {
        SqlFingerprint first = PostgresParser.Fingerprint("SELECT a FROM t WHERE b = 1 AND c IN (1, 2, 3)");
        SqlFingerprint second = PostgresParser.Fingerprint("select a\n  from t /* why */ where b = 42 and c in (7)");
        SqlFingerprint other = PostgresParser.Fingerprint("SELECT a FROM t WHERE d = 1");

        Assert.Equal(first, second);
        Assert.NotEqual(first.Value, other.Value);
        Assert.Equal(first.Value.ToString("x16", null), first.Text);
    }

    [Fact]
    public void Normalize_replaces_constants_with_parameters_and_keeps_the_rest()
    {
        string normalized = PostgresParser.Normalize("SELECT a /* keep */ FROM t WHERE b = 'secret' AND c = $1 AND d IN (1, 2.5)");

        Assert.Equal("SELECT a /* keep */ FROM t WHERE b = $2 AND c = $1 AND d IN ($3, $4)", normalized);
    }

    [Fact]
    public void Deparse_round_trips_a_tree_to_equivalent_sql()
    {
        const string sql = "select count(distinct \"t\".\"a b\") as n from s.t \"t\" where x::text = 'y' having (count(1) > 0); select 2";
        ParseResult tree = PostgresParser.Parse(sql);

        string deparsed = PostgresParser.Deparse(tree);

        Assert.Equal("SELECT count(DISTINCT t.\"a b\") AS n FROM s.t t WHERE x::text = 'y' HAVING count(1) > 0; SELECT 2", deparsed);
        Assert.Equal(PostgresParser.Fingerprint(sql), PostgresParser.Fingerprint(deparsed));
    }

    [Fact]
    public void Deparse_writes_a_changed_tree()
    {
        ParseResult tree = PostgresParser.Parse("SELECT count(DISTINCT x) FROM t");
        FuncCall call = tree.Stmts[0].Stmt.SelectStmt.TargetList[0].ResTarget.Val.FuncCall;
        call.Funcname[0].String.Sval = "hll_count";
        call.AggDistinct = false;

        Assert.Equal("SELECT hll_count(x) FROM t", PostgresParser.Deparse(tree));
    }

    [Fact]
    public void Errors_name_the_problem_for_every_entry_point()
    {
        Assert.Throws<SqlParseException>(() => PostgresParser.Fingerprint("SELECT FROM WHERE"));
        Assert.Throws<SqlParseException>(() => PostgresParser.Normalize("SELECT FROM WHERE"));
        SqlParseException error = Assert.Throws<SqlParseException>(() => PostgresParser.Parse("SELECT 1 +"));
        Assert.Contains("syntax error at end of input", error.Message, StringComparison.Ordinal);
        Assert.Equal(11, error.CursorPosition);
    }
}

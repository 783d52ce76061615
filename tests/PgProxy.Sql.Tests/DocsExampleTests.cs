using PgQuery;

namespace PgProxy.Sql.Tests;

/// <summary>The example of docs/sql.md, kept compiling and correct.</summary>
public sealed class DocsExampleTests
{
    private static readonly ParseCache<string> Rewritten = new(capacity: 4096);

    [Fact]
    public void The_documented_rewrite_changes_only_the_call()
    {
        const string sql = "SELECT /* é */ count( DISTINCT \"t\".\"a b\" ) AS n, COUNT(x) -- keep\nFROM s.t \"t\"";

        string rewritten = RewriteQuery(sql);

        Assert.Equal("SELECT /* é */ hll_cardinality(hll_union_agg(\"t\".\"a b\"))::bigint AS n, COUNT(x) -- keep\nFROM s.t \"t\"", rewritten);
        Assert.Same(rewritten, RewriteQuery(sql));
        Assert.Same("SELECT 1", RewriteQuery("SELECT 1"));
    }

    private static string RewriteQuery(string sql) => Rewritten.GetOrAdd(sql, static sql => Rewrite(sql));

    private static string Rewrite(string sql)
    {
        ParseResult tree = PostgresParser.Parse(sql);
        SqlTokens tokens = PostgresParser.Scan(sql);
        var offsets = new Utf8Offsets(sql);
        var editor = new SqlEditor(sql);
        foreach (ResTarget target in tree.Stmts[0].Stmt.SelectStmt.TargetList.Select(node => node.ResTarget))
        {
            if (target.Val.FuncCall is { AggDistinct: true } call && call.Funcname[^1].String.Sval == "count")
            {
                int name = tokens.IndexAt(offsets.ToCharIndex(call.Location));   // the token "count"
                int close = tokens.MatchingClose(name + 1);                      // the ")" of its "("
                int argument = offsets.ToCharIndex(call.Args[0].ColumnRef.Location);
                string column = sql[argument..tokens[close].Start].TrimEnd();
                editor.ReplaceTokens(tokens[name], tokens[close], $"hll_cardinality(hll_union_agg({column}))::bigint");
            }
        }

        return editor.Apply();   // the same string instance when nothing was replaced
    }
}

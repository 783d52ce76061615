using System.Text;

namespace PgProxy.Sql.Tests.Fuzzing;

/// <summary>
/// The boundaries of PgProxy.Sql that take a client's SQL text, as one fuzz target: the bytes are decoded as UTF-8
/// (as the proxy decodes a Query), and every entry point must give a result or refuse the text with
/// <see cref="SqlParseException"/>; <see cref="PasswordRedaction.Redact"/> must never throw. Every span and token
/// returned is read back from the text, so a position outside it fails too. Shared by the CI replay
/// (<c>SqlFuzzReplayTests</c>) and the SharpFuzz harness under fuzz/, which links this file.
/// </summary>
public static class SqlFuzzTarget
{
    /// <summary>Runs every boundary on the text of <paramref name="data"/>.</summary>
    public static void Run(byte[] data)
    {
        string sql = Encoding.UTF8.GetString(data);
        _ = PasswordRedaction.Redact(sql);
        Scan(sql);
        Split(sql, parser: true);
        Split(sql, parser: false);
        try
        {
            _ = PostgresParser.Fingerprint(sql);
        }
        catch (SqlParseException)
        {
            // Its documented refusal.
        }

        try
        {
            _ = PostgresParser.Normalize(sql);
        }
        catch (SqlParseException)
        {
            // Its documented refusal.
        }

        PgQuery.ParseResult tree;
        try
        {
            tree = PostgresParser.Parse(sql);
        }
        catch (SqlParseException)
        {
            return;
        }

        try
        {
            _ = PostgresParser.Deparse(tree);
        }
        catch (SqlParseException)
        {
            // A node the deparser cannot write: its documented refusal.
        }
    }

    private static void Scan(string sql)
    {
        SqlTokens tokens;
        try
        {
            tokens = PostgresParser.Scan(sql);
        }
        catch (SqlParseException)
        {
            return;
        }

        for (int i = 0; i < tokens.Count; i++)
        {
            _ = tokens.TextOf(i);
            _ = tokens.IndexAt(tokens[i].Start);
            _ = tokens.MatchingClose(i);
        }
    }

    private static void Split(string sql, bool parser)
    {
        IReadOnlyList<SqlStatementSpan> spans;
        try
        {
            spans = parser ? PostgresParser.Split(sql) : PostgresParser.SplitWithScanner(sql);
        }
        catch (SqlParseException)
        {
            return;
        }

        foreach (SqlStatementSpan span in spans)
        {
            _ = span.TextOf(sql);
        }
    }
}

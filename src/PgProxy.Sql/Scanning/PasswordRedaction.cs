using System.Text;

namespace PgProxy.Sql;

/// <summary>
/// Takes passwords out of SQL before it is written anywhere (a log, the query log, the admin console). PostgreSQL's
/// own lexer finds the literals, so a quote inside a comment, a quoted identifier or a dollar-quoted body is never
/// mistaken for one. Two kinds of string constant are replaced by <see cref="Marker"/>:
/// <list type="bullet">
/// <item>the one right after the word <c>PASSWORD</c> (a keyword or an identifier): <c>CREATE</c>/<c>ALTER ROLE</c>/<c>USER …
/// [ENCRYPTED] PASSWORD '…'</c>, including the pre-hashed <c>'SCRAM-SHA-256$…'</c> and <c>'md5…'</c> that psql's
/// <c>\password</c> sends, and <c>OPTIONS (password '…')</c> of user mappings;</item>
/// <item>any string constant whose text holds the word <c>password</c>: a connection string (<c>'… password=…'</c>), or a
/// <c>DO</c> or function body that sets one.</item>
/// </list>
/// Only a text that holds <c>password</c> (in any case) is scanned; any other is returned as it is, without a copy.
/// </summary>
public static class PasswordRedaction
{
    /// <summary>What a password literal is replaced with: still a string constant, so the statement reads as SQL.</summary>
    public const string Marker = "'[password redacted]'";

    /// <summary>What a text that holds <c>password</c> becomes when the lexer cannot read it (an unterminated quote, say).</summary>
    public const string Unreadable = "(a statement that may carry a password, not shown: PgProxy could not scan it)";

    /// <summary>What a text that holds <c>password</c> becomes when libpg_query is not installed to find the literal.</summary>
    public const string NoScanner = "(a statement that may carry a password, not shown: libpg_query is not installed to find it)";

    /// <summary>True when <paramref name="sql"/> holds the word <c>password</c> in any case: only then can it carry one.</summary>
    public static bool MayCarryPassword(ReadOnlySpan<char> sql) => sql.Contains("password", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// <paramref name="sql"/> with every password literal replaced by <see cref="Marker"/>; the same instance when it
    /// has none. Never throws for what the text holds: a text that cannot be scanned is replaced whole.
    /// </summary>
    public static string Redact(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        if (!MayCarryPassword(sql))
        {
            return sql;
        }

        SqlTokens tokens;
        try
        {
            tokens = PostgresParser.Scan(sql);
        }
        catch (SqlParseException)
        {
            return Unreadable;
        }
        catch (SqlParserUnavailableException)
        {
            return NoScanner;
        }

        StringBuilder? redacted = null;
        int copied = 0;
        ReadOnlySpan<SqlToken> all = tokens.AsSpan();
        for (int i = 0; i < all.Length; i++)
        {
            SqlToken token = all[i];
            if (token.Kind is not (PgQuery.Token.Sconst or PgQuery.Token.Usconst)
                || !((i > 0 && NamesPassword(tokens, i - 1)) || MayCarryPassword(tokens.TextOf(i))))
            {
                continue;
            }

            // Up to the next token, not only to the token's end: the lexer reports a U&'…' constant with no length,
            // and a literal left half in clear is worse than a comment after it replaced too.
            int end = Math.Max(token.End, i + 1 < all.Length ? all[i + 1].Start : sql.Length);
            while (end > token.End && char.IsWhiteSpace(sql[end - 1]))
            {
                end--;
            }

            redacted ??= new StringBuilder(sql.Length);
            redacted.Append(sql, copied, token.Start - copied).Append(Marker);
            copied = end;
        }

        return redacted is null ? sql : redacted.Append(sql, copied, sql.Length - copied).ToString();
    }

    /// <summary>The keyword PASSWORD, or an identifier (quoted or not) spelled password.</summary>
    private static bool NamesPassword(SqlTokens tokens, int index)
    {
        PgQuery.Token kind = tokens[index].Kind;
        if (kind == PgQuery.Token.Password)
        {
            return true;
        }

        return kind is PgQuery.Token.Ident or PgQuery.Token.Uident
            && tokens.TextOf(index).Trim('"').Equals("password", StringComparison.OrdinalIgnoreCase);
    }
}

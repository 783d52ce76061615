using PgProxy.Sql;

namespace PgProxy.Core.Rules;

/// <summary>
/// Where a statement's text is not SQL code but the inside of a string constant (<c>'...'</c>, <c>E'...'</c>,
/// <c>U&amp;'...'</c>, <c>B'...'</c>, <c>X'...'</c>, a dollar-quoted body) or of a comment, from PostgreSQL's own lexer,
/// so that a <c>query</c> rule does not fire on a lookalike inside them. A position at a literal's or comment's opening
/// delimiter (<c>'</c>, <c>E'</c>, <c>U&amp;'</c>, <c>$tag$</c>, <c>--</c>, <c>/*</c>) is outside: a pattern that starts
/// with the delimiter means to match the literal. Quoted identifiers are code: <c>"visitor"</c> names a column.
/// </summary>
internal sealed class SqlTextRegions
{
    private readonly string text;
    private readonly SqlToken[] tokens;

    // The true end of each token: libpg_query 15 reports U&'...' (USCONST) and U&"..." (UIDENT) with an end at or just
    // past their start, so those are measured here from the text.
    private readonly int[] ends;

    private SqlTextRegions(string text, SqlToken[] tokens)
    {
        this.text = text;
        this.tokens = tokens;
        ends = new int[tokens.Length];
        for (int index = 0; index < tokens.Length; index++)
        {
            SqlToken token = tokens[index];
            ends[index] = token.Kind is PgQuery.Token.Usconst or PgQuery.Token.Uident ? UnicodeQuotedEnd(text, token.Start) : token.End;
        }
    }

    /// <summary>The regions of <paramref name="sql"/>; null when its text cannot be lexed (an unterminated quote or comment).</summary>
    /// <remarks>
    /// A text the lexer rejects is rejected by the server too, before any of it runs, so whatever a rule does to it
    /// changes nothing that runs; the caller then matches as if <c>anywhere</c> were set.
    /// </remarks>
    public static SqlTextRegions? TryScan(string sql)
    {
        try
        {
            SqlTokens tokens = PostgresParser.Scan(sql);
            return new SqlTextRegions(sql, tokens.AsSpan().ToArray());
        }
        catch (SqlParseException)
        {
            return null;
        }
    }

    /// <summary>Whether a match starting at <paramref name="position"/> starts inside a literal's body or a comment.</summary>
    public bool StartsInside(int position)
    {
        // The last token that starts at or before the position.
        int low = 0;
        int high = tokens.Length - 1;
        int found = -1;
        while (low <= high)
        {
            int middle = low + ((high - low) >> 1);
            if (tokens[middle].Start <= position)
            {
                found = middle;
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        if (found >= 0 && position < ends[found])
        {
            SqlToken token = tokens[found];
            return IsStringConstant(token.Kind) && position >= token.Start + OpeningDelimiterLength(token.Start);
        }

        // Between two tokens there is only whitespace and comments (the lexer keeps nothing else out of its tokens).
        int gapStart = found >= 0 ? ends[found] : 0;
        int gapEnd = found + 1 < tokens.Length ? tokens[found + 1].Start : text.Length;
        return InsideComment(gapStart, Math.Max(gapStart, gapEnd), position);
    }

    private static bool IsStringConstant(PgQuery.Token kind) =>
        kind is PgQuery.Token.Sconst or PgQuery.Token.Usconst or PgQuery.Token.Bconst or PgQuery.Token.Xconst;

    /// <summary><c>$tag$</c> for a dollar quote; otherwise everything up to and including the first <c>'</c> (<c>'</c>, <c>E'</c>, <c>U&amp;'</c>, <c>B'</c>, <c>X'</c>).</summary>
    private int OpeningDelimiterLength(int start)
    {
        if (text[start] == '$')
        {
            int close = text.IndexOf('$', start + 1);
            return close < 0 ? 1 : close - start + 1;
        }

        int quote = text.IndexOf('\'', start);
        return quote < 0 ? 1 : quote - start + 1;
    }

    /// <summary>
    /// Whether <paramref name="position"/> in a stretch of whitespace and comments lies in a comment, past its opening
    /// <c>--</c> or <c>/*</c>. Block comments nest, as in PostgreSQL.
    /// </summary>
    private bool InsideComment(int start, int end, int position)
    {
        int index = start;
        while (index < end && index <= position)
        {
            if (index + 1 < end && text[index] == '-' && text[index + 1] == '-')
            {
                int lineEnd = text.IndexOfAny(['\n', '\r'], index, end - index);
                int commentEnd = lineEnd < 0 ? end : lineEnd;
                if (position < commentEnd)
                {
                    return position >= index + 2;
                }

                index = commentEnd;
            }
            else if (index + 1 < end && text[index] == '/' && text[index + 1] == '*')
            {
                int commentStart = index;
                int depth = 1;
                index += 2;
                while (index < end && depth > 0)
                {
                    if (index + 1 < end && text[index] == '/' && text[index + 1] == '*')
                    {
                        depth++;
                        index += 2;
                    }
                    else if (index + 1 < end && text[index] == '*' && text[index + 1] == '/')
                    {
                        depth--;
                        index += 2;
                    }
                    else
                    {
                        index++;
                    }
                }

                if (position < index)
                {
                    return position >= commentStart + 2;
                }
            }
            else
            {
                index++;
            }
        }

        return false;
    }

    /// <summary>Just past the closing quote of <c>U&amp;'...'</c> or <c>U&amp;"..."</c> starting at <paramref name="start"/> (a doubled quote is part of the body).</summary>
    private static int UnicodeQuotedEnd(string text, int start)
    {
        int open = start + 2;
        if (open >= text.Length)
        {
            return text.Length;
        }

        char quote = text[open];
        int index = open + 1;
        while (index < text.Length)
        {
            if (text[index] == quote)
            {
                if (index + 1 < text.Length && text[index + 1] == quote)
                {
                    index += 2;
                    continue;
                }

                return index + 1;
            }

            index++;
        }

        return text.Length;
    }
}

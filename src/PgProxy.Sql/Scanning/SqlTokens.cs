using System.Collections;

namespace PgProxy.Sql;

/// <summary>
/// The tokens of one query in order of position, with the query they came from. Comments are not tokens (see
/// <see cref="PostgresParser.Scan"/>). Immutable and safe to share between threads (for example through a
/// <see cref="ParseCache{TValue}"/>).
/// </summary>
public sealed class SqlTokens : IReadOnlyList<SqlToken>
{
    private readonly SqlToken[] tokens;

    // Index of the matching ')' for each '(' token (and of the '(' for each ')'), -1 where unbalanced. Built on first
    // use; two threads racing build the same array, and publishing either one is correct.
    private int[]? parenthesisPartners;

    internal SqlTokens(string text, SqlToken[] tokens)
    {
        Text = text;
        this.tokens = tokens;
    }

    /// <summary>The query the tokens were scanned from; token positions are indexes into it.</summary>
    public string Text { get; }

    /// <inheritdoc />
    public int Count => tokens.Length;

    /// <inheritdoc />
    public SqlToken this[int index] => tokens[index];

    /// <summary>The tokens as a span, for loops without an enumerator.</summary>
    public ReadOnlySpan<SqlToken> AsSpan() => tokens;

    /// <summary>The text of token <paramref name="index"/>, exactly as written in the query (quotes included).</summary>
    public ReadOnlySpan<char> TextOf(int index)
    {
        SqlToken token = tokens[index];
        return Text.AsSpan(token.Start, token.Length);
    }

    /// <summary>
    /// The index of the token that starts exactly at string index <paramref name="charIndex"/>, or -1 when no token
    /// starts there (inside a token, a comment or whitespace). A binary search: O(log n).
    /// </summary>
    public int IndexAt(int charIndex)
    {
        int low = 0;
        int high = tokens.Length - 1;
        while (low <= high)
        {
            int middle = low + ((high - low) >> 1);
            int start = tokens[middle].Start;
            if (start == charIndex)
            {
                return middle;
            }

            if (start < charIndex)
            {
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return -1;
    }

    /// <summary>
    /// The index of the <c>)</c> token that closes the <c>(</c> token at <paramref name="openParenTokenIndex"/>, or -1
    /// when that token is not <c>(</c> or is never closed. O(1) after a first call that pairs every parenthesis.
    /// </summary>
    public int MatchingClose(int openParenTokenIndex)
    {
        if ((uint)openParenTokenIndex >= (uint)tokens.Length || tokens[openParenTokenIndex].Kind != PgQuery.Token.Ascii40)
        {
            return -1;
        }

        int[] partners = parenthesisPartners ??= PairParentheses(tokens);
        return partners[openParenTokenIndex];
    }

    /// <inheritdoc />
    public IEnumerator<SqlToken> GetEnumerator() => ((IEnumerable<SqlToken>)tokens).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => tokens.GetEnumerator();

    private static int[] PairParentheses(SqlToken[] tokens)
    {
        int[] partners = new int[tokens.Length];
        Array.Fill(partners, -1);
        var open = new Stack<int>();
        for (int index = 0; index < tokens.Length; index++)
        {
            switch (tokens[index].Kind)
            {
                case PgQuery.Token.Ascii40:
                    open.Push(index);
                    break;
                case PgQuery.Token.Ascii41 when open.TryPop(out int opener):
                    partners[opener] = index;
                    partners[index] = opener;
                    break;
            }
        }

        return partners;
    }
}

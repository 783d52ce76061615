using System.Buffers;
using PgProxy.Core.Configuration;
using PgProxy.Sql;

namespace PgProxy.Core.Rules;

/// <summary>
/// One statement's text and what the parser says about it, each worked out the first time a rule asks and then shared by
/// the rules after it: the parse (for <c>statement</c> and <c>tables</c>), the fingerprint, and the lexer's literal and
/// comment regions (only once a <c>query</c> pattern matched somewhere, to tell a lookalike from code). A rule that
/// changes the text gets a new analysis for the rules after it. Used by one evaluation, on one thread.
/// </summary>
internal sealed class StatementAnalysis(string text)
{
    // The characters that every literal's and comment's opening delimiter holds: ', $, -- and /*.
    private static readonly SearchValues<char> OpeningCharacters = SearchValues.Create("'$-/");

    private int firstOpening = -1;
    private bool parsed;
    private StatementKinds kinds;
    private List<RelationReference>? relations;
    private bool fingerprinted;
    private string? fingerprint;
    private bool scanned;
    private SqlTextRegions? regions;

    public string Text => text;

    /// <summary>The statement's kinds; <see cref="StatementKinds.None"/> when the parser cannot read it.</summary>
    public StatementKinds Kinds
    {
        get
        {
            EnsureParsed();
            return kinds;
        }
    }

    /// <summary>The relations the statement names; null when the parser cannot read it.</summary>
    public IReadOnlyList<RelationReference>? Relations
    {
        get
        {
            EnsureParsed();
            return relations;
        }
    }

    /// <summary>The libpg_query fingerprint, 16 lowercase hex digits; null when the parser cannot read the statement.</summary>
    public string? Fingerprint
    {
        get
        {
            if (!fingerprinted)
            {
                fingerprinted = true;
                try
                {
                    fingerprint = PostgresParser.Fingerprint(text).Text;
                }
                catch (SqlParseException)
                {
                    fingerprint = null;
                }
            }

            return fingerprint;
        }
    }

    /// <summary>Whether a pattern match starting at <paramref name="position"/> starts inside a literal or a comment (false when the text cannot be lexed).</summary>
    public bool StartsInsideLiteralOrComment(int position)
    {
        // A literal or comment that holds the position opened before it. With no opening delimiter before it (pgbench's
        // statements and most others have none), the answer needs no lexer: its scan costs several µs per text.
        if (firstOpening < 0)
        {
            firstOpening = FirstPossibleOpening(text);
        }

        if (position <= firstOpening)
        {
            return false;
        }

        if (!scanned)
        {
            scanned = true;
            regions = SqlTextRegions.TryScan(text);
        }

        return regions?.StartsInside(position) ?? false;
    }

    /// <summary>
    /// Where the first literal or comment could open: the first <c>'</c>, <c>--</c>, <c>/*</c>, or <c>$</c> not followed
    /// by a digit (<c>$1</c> is a parameter, not a dollar quote); the text's length when there is none. Conservative: a
    /// quote inside a quoted identifier counts too, and only means the lexer is asked.
    /// </summary>
    internal static int FirstPossibleOpening(string text)
    {
        int offset = 0;
        while (true)
        {
            int found = text.AsSpan(offset).IndexOfAny(OpeningCharacters);
            if (found < 0)
            {
                return text.Length;
            }

            int at = offset + found;
            char next = at + 1 < text.Length ? text[at + 1] : '\0';
            bool opens = text[at] switch
            {
                '\'' => true,
                '$' => !char.IsAsciiDigit(next),
                '-' => next == '-',
                _ => next == '*',
            };
            if (opens)
            {
                return at;
            }

            offset = at + 1;
        }
    }

    private void EnsureParsed()
    {
        if (parsed)
        {
            return;
        }

        parsed = true;
        try
        {
            PgQuery.ParseResult tree = PostgresParser.Parse(text);
            var found = new List<RelationReference>();
            foreach (PgQuery.RawStmt statement in tree.Stmts)
            {
                kinds |= StatementClassifier.Classify(statement.Stmt);
                StatementClassifier.CollectRelations(statement.Stmt, found);
            }

            relations = found;
        }
        catch (SqlParseException)
        {
            // PostgreSQL rejects it too (or it is newer syntax than libpg_query 15 knows): rules that need the parse do not match.
            kinds = StatementKinds.None;
            relations = null;
        }
    }
}

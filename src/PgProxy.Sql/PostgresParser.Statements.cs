using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using PgProxy.Sql.Native;

namespace PgProxy.Sql;

public static unsafe partial class PostgresParser
{
    /// <summary>
    /// Splits a text of several statements (as a client may send in one simple Query) where the PostgreSQL parser
    /// ends each one: semicolons inside strings, quoted identifiers, dollar quotes, comments and bodies such as
    /// <c>CREATE RULE … (SELECT 1; SELECT 2)</c> do not split. Each span starts at the statement's first token
    /// (whitespace and comments between statements are left out) and ends before its <c>;</c> with trailing
    /// whitespace left out (a comment just before the <c>;</c> stays in the span). Empty statements
    /// (<c>;;</c>) give no span.
    /// </summary>
    /// <exception cref="SqlParseException">The text is not valid SQL (<see cref="SplitWithScanner"/> splits it anyway), or has more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static IReadOnlyList<SqlStatementSpan> Split(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        // The parser's split walks the tree natively: deep queries need the deep stack like Parse.
        return MayNestDeeply(sql) ? DeepStack.Run(sql, static sql => SplitCore(sql, useParser: true)) : SplitCore(sql, useParser: true);
    }

    /// <summary>
    /// Like <see cref="Split"/>, but with the lexer alone, so it also splits text the grammar rejects (to report or
    /// pass through the statements that are fine). Less exact than the parser for statements with bodies that
    /// contain semicolons outside quotes (<c>CREATE RULE</c>), and libpg_query's scanner split leaves out a statement
    /// with no keyword at all (<c>SELEC 1</c>: a typo of the first word). Leading whitespace and comments are left
    /// out of each span as with <see cref="Split"/>.
    /// </summary>
    /// <exception cref="SqlParseException">The text has a lexical error (such as an unterminated quote), or more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static IReadOnlyList<SqlStatementSpan> SplitWithScanner(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        return SplitCore(sql, useParser: false);
    }

    /// <summary>
    /// The fingerprint of a query: the same for queries that differ only in constants, formatting or comments, so it
    /// can name a query shape in logs, metrics or rules.
    /// </summary>
    /// <exception cref="SqlParseException">The query is not valid SQL, or has more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static SqlFingerprint Fingerprint(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        // Fingerprinting recurses over the tree in C: deep queries need the deep stack like Parse.
        return MayNestDeeply(sql) ? DeepStack.Run(sql, FingerprintCore) : FingerprintCore(sql);
    }

    private static SqlFingerprint FingerprintCore(string sql)
    {
        using NativeText text = new(sql);
        PgQueryNative.PgQueryFingerprintResult result = PgQueryNative.Fingerprint(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            return new SqlFingerprint(result.Fingerprint, Marshal.PtrToStringUTF8((IntPtr)result.FingerprintText) ?? result.Fingerprint.ToString("x16", null));
        }
        finally
        {
            PgQueryNative.FreeFingerprintResult(result);
        }
    }

    /// <summary>
    /// The query with every constant replaced by a parameter symbol (<c>$1</c>, <c>$2</c>, … after any the query
    /// already had), as pg_stat_statements shows queries: for logs that must not carry the values. The rest of the
    /// text (comments, whitespace, case) is kept.
    /// </summary>
    /// <exception cref="SqlParseException">The query is not valid SQL, or has more than <see cref="MaxSignRun"/> + and - signs in a row.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static string Normalize(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        EnsureAvailable();
        RefuseLongSignRuns(sql);
        // Normalizing walks the tree in C: deep queries need the deep stack like Parse.
        return MayNestDeeply(sql) ? DeepStack.Run(sql, NormalizeCore) : NormalizeCore(sql);
    }

    private static string NormalizeCore(string sql)
    {
        using NativeText text = new(sql);
        PgQueryNative.PgQueryNormalizeResult result = PgQueryNative.Normalize(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            return Marshal.PtrToStringUTF8((IntPtr)result.NormalizedQuery) ?? string.Empty;
        }
        finally
        {
            PgQueryNative.FreeNormalizeResult(result);
        }
    }

    /// <summary>
    /// Turns a parse tree (from <see cref="Parse"/>, possibly changed) back into SQL text. The text is PostgreSQL's
    /// canonical spelling, not the client's: comments and formatting are gone. To change part of a query and keep the
    /// rest as written, use <see cref="SqlEditor"/> instead; deparse suits rewrites too large to express as edits.
    /// Statements are joined with <c>"; "</c>.
    /// </summary>
    /// <exception cref="SqlParseException">The tree has a node the deparser cannot write.</exception>
    /// <exception cref="SqlParserUnavailableException">libpg_query is not installed.</exception>
    public static string Deparse(PgQuery.ParseResult tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        EnsureAvailable();
        // Serializing the tree and deparsing it both recurse once per level, and nothing tells how deep a tree is
        // without recursing over it: deparse always runs on the deep stack. It is the rare, heavy path anyway.
        return DeepStack.Run(tree, DeparseCore);
    }

    private static string DeparseCore(PgQuery.ParseResult tree)
    {
        int size = tree.CalculateSize();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            tree.WriteTo(buffer.AsSpan(0, size));
            fixed (byte* data = buffer)
            {
                var input = new PgQueryNative.PgQueryProtobuf { Length = (nuint)size, Data = data };
                PgQueryNative.PgQueryDeparseResult result = PgQueryNative.DeparseProtobuf(input);
                try
                {
                    ThrowOnError(result.Error);
                    return Marshal.PtrToStringUTF8((IntPtr)result.Query) ?? string.Empty;
                }
                finally
                {
                    PgQueryNative.FreeDeparseResult(result);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static SqlStatementSpan[] SplitCore(string sql, bool useParser)
    {
        using NativeText text = new(sql);
        PgQueryNative.PgQuerySplitResult result = useParser ? PgQueryNative.SplitWithParser(text.Pointer) : PgQueryNative.SplitWithScanner(text.Pointer);
        try
        {
            ThrowOnError(result.Error);
            var spans = new List<SqlStatementSpan>(result.StatementCount);
            var cursor = new Utf8Cursor(sql, Ascii.IsValid(sql));
            for (int index = 0; index < result.StatementCount; index++)
            {
                PgQueryNative.PgQuerySplitStatement* statement = result.Statements[index];
                int start = cursor.ToCharIndex(statement->Location);
                int end = cursor.ToCharIndex(statement->Location + statement->Length);
                // libpg_query starts each statement right after the previous semicolon; the statement itself starts
                // at its first token, which is what a caller wants to show, log or edit.
                start = SkipWhitespaceAndComments(sql, start, end);
                // It ends at the semicolon, or at the end of the text: whitespace before either is not the statement's.
                while (end > start && char.IsWhiteSpace(sql[end - 1]))
                {
                    end--;
                }

                if (end > start)
                {
                    spans.Add(new SqlStatementSpan(start, end - start));
                }
            }

            return [.. spans];
        }
        finally
        {
            PgQueryNative.FreeSplitResult(result);
        }
    }

    /// <summary>The index of the first character from <paramref name="start"/> on that is neither whitespace nor inside a comment.</summary>
    internal static int SkipWhitespaceAndComments(string sql, int start, int end)
    {
        int index = start;
        while (index < end)
        {
            if (char.IsWhiteSpace(sql[index]))
            {
                index++;
            }
            else if (index + 1 < end && sql[index] == '-' && sql[index + 1] == '-')
            {
                int lineEnd = sql.IndexOfAny(['\n', '\r'], index, end - index);
                index = lineEnd < 0 ? end : lineEnd + 1;
            }
            else if (index + 1 < end && sql[index] == '/' && sql[index + 1] == '*')
            {
                // PostgreSQL's block comments nest.
                int depth = 1;
                index += 2;
                while (index < end && depth > 0)
                {
                    if (index + 1 < end && sql[index] == '/' && sql[index + 1] == '*')
                    {
                        depth++;
                        index += 2;
                    }
                    else if (index + 1 < end && sql[index] == '*' && sql[index + 1] == '/')
                    {
                        depth--;
                        index += 2;
                    }
                    else
                    {
                        index++;
                    }
                }
            }
            else
            {
                break;
            }
        }

        return index;
    }
}

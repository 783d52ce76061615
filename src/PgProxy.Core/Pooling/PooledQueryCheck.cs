using PgProxy.Sql;
using PgQuery;

namespace PgProxy.Core.Pooling;

/// <summary>What a client's SQL asks of its session that transaction pooling must act on.</summary>
internal enum PooledQueryEffect
{
    /// <summary>Nothing session-wide, or only settings, which are in <see cref="PooledQueryCheck.Settings"/>.</summary>
    None,

    /// <summary>Cannot follow the client from connection to connection: refused with 0A000 and <see cref="PooledQueryCheck.Refusal"/>.</summary>
    Refuse,

    /// <summary><c>DEALLOCATE ALL</c>: the client's own statements only.</summary>
    DeallocateAll,

    /// <summary><c>DISCARD ALL</c>: the client's statements and settings only.</summary>
    DiscardAll,

    /// <summary><c>RESET ALL</c>: the client's settings back to its start-up values.</summary>
    ResetAll,
}

/// <summary>The verdict on one Query or Parse text.</summary>
internal readonly record struct PooledQueryCheck(PooledQueryEffect Effect, string? Refusal, IReadOnlyList<string>? Settings)
{
    public static PooledQueryCheck Nothing => default;
}

/// <summary>
/// Finds, in a Query or Parse text, the statements that act on the whole server session and so cannot simply run on
/// whichever connection a transaction gets: <c>SET</c>/<c>RESET</c> of a setting (tracked, and replayed on the next
/// connections), <c>DISCARD ALL</c>, <c>RESET ALL</c> and <c>DEALLOCATE ALL</c> (acted on for this client only), and
/// SQL-level <c>PREPARE</c>/<c>EXECUTE</c>/<c>DEALLOCATE</c> and <c>LISTEN</c> (refused). Most texts are decided by a
/// look at the first word of each statement, with no parse and no allocation.
/// </summary>
internal static partial class PooledQueryChecker
{
    [System.Text.RegularExpressions.GeneratedRegex(@"set_config\s*\(\s*'(?<name>(?:[^']|'')+)'", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex SetConfigCall();

    private static readonly string[] Words = ["set", "reset", "discard", "deallocate", "prepare", "execute", "listen"];

    /// <summary>The verdict on the UTF-8 text of a Query or Parse.</summary>
    public static PooledQueryCheck Check(ReadOnlySpan<byte> text)
    {
        bool setsConfig = text.IndexOf("set_config"u8) >= 0 || text.IndexOf("SET_CONFIG"u8) >= 0;
        if (!(setsConfig || MayMatter(text)) || !PostgresParser.IsAvailable)
        {
            return PooledQueryCheck.Nothing;
        }

        ParseResult tree;
        try
        {
            tree = PostgresParser.Parse(System.Text.Encoding.UTF8.GetString(text));
        }
        catch (SqlParseException)
        {
            return PooledQueryCheck.Nothing; // the server reports the syntax error
        }

        List<string>? settings = null;
        if (setsConfig)
        {
            // set_config(name, value, false) in a query: pg_dump sets search_path this way. A name that is not a
            // literal cannot be known here (documented).
            foreach (System.Text.RegularExpressions.Match call in SetConfigCall().Matches(System.Text.Encoding.UTF8.GetString(text)))
            {
                (settings ??= []).Add(call.Groups["name"].Value.Replace("''", "'", StringComparison.Ordinal));
            }
        }

        PooledQueryEffect whole = PooledQueryEffect.None;
        foreach (RawStmt statement in tree.Stmts)
        {
            Node node = statement.Stmt;
            switch (node.NodeCase)
            {
                case Node.NodeOneofCase.VariableSetStmt when !node.VariableSetStmt.IsLocal:
                    VariableSetStmt set = node.VariableSetStmt;
                    if (set.Kind == VariableSetKind.VarResetAll)
                    {
                        whole = PooledQueryEffect.ResetAll;
                    }
                    else if (set.Kind is VariableSetKind.VarSetValue or VariableSetKind.VarSetDefault or VariableSetKind.VarSetCurrent or VariableSetKind.VarReset
                        && set.Name.Length > 0)
                    {
                        (settings ??= []).Add(set.Name);
                    }

                    break;
                case Node.NodeOneofCase.DiscardStmt when node.DiscardStmt.Target == DiscardMode.DiscardAll:
                    whole = PooledQueryEffect.DiscardAll;
                    break;
                case Node.NodeOneofCase.DeallocateStmt when node.DeallocateStmt.Name.Length == 0:
                    whole = PooledQueryEffect.DeallocateAll;
                    break;
                case Node.NodeOneofCase.PrepareStmt:
                case Node.NodeOneofCase.ExecuteStmt:
                case Node.NodeOneofCase.DeallocateStmt:
                    return Refused("SQL-level PREPARE, EXECUTE and DEALLOCATE cannot follow a client from one server connection to the next in transaction pooling; use protocol-level prepared statements (Parse/Bind), which PgProxy maps, or pool.mode: session");
                case Node.NodeOneofCase.ListenStmt:
                    return Refused("LISTEN is not available in transaction pooling: notifications would reach whichever client has the connection next; use pool.mode: session for listening clients");
            }
        }

        if (whole != PooledQueryEffect.None && tree.Stmts.Count > 1)
        {
            return Refused("DISCARD ALL, RESET ALL and DEALLOCATE ALL must be sent alone in transaction pooling, so that they act on this client's statements and settings only");
        }

        return new PooledQueryCheck(whole, null, settings);
    }

    private static PooledQueryCheck Refused(string message) => new(PooledQueryEffect.Refuse, message, null);

    /// <summary>
    /// Whether some statement of <paramref name="text"/> may begin with one of the words that matter: a statement begins
    /// at the start or after a semicolon (one inside a literal only costs a parse), past blanks and comments.
    /// </summary>
    internal static bool MayMatter(ReadOnlySpan<byte> text)
    {
        int position = 0;
        while (true)
        {
            position = SkipBlanks(text, position);
            if (StartsWithWord(text[position..]))
            {
                return true;
            }

            int semicolon = text[position..].IndexOf((byte)';');
            if (semicolon < 0)
            {
                return false;
            }

            position += semicolon + 1;
        }
    }

    private static int SkipBlanks(ReadOnlySpan<byte> text, int position)
    {
        while (position < text.Length)
        {
            byte b = text[position];
            if (b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r' or (byte)'\f' or (byte)'(')
            {
                position++;
            }
            else if (b == (byte)'-' && position + 1 < text.Length && text[position + 1] == (byte)'-')
            {
                int end = text[position..].IndexOf((byte)'\n');
                position = end < 0 ? text.Length : position + end + 1;
            }
            else if (b == (byte)'/' && position + 1 < text.Length && text[position + 1] == (byte)'*')
            {
                int end = text[(position + 2)..].IndexOf("*/"u8);
                position = end < 0 ? text.Length : position + 2 + end + 2;
            }
            else
            {
                break;
            }
        }

        return position;
    }

    private static bool StartsWithWord(ReadOnlySpan<byte> text)
    {
        int length = 0;
        while (length < text.Length && length < 12 && char.IsAsciiLetter((char)text[length]))
        {
            length++;
        }

        if (length < 3 || (length < text.Length && (char.IsAsciiLetterOrDigit((char)text[length]) || text[length] == (byte)'_')))
        {
            return false;
        }

        Span<char> word = stackalloc char[length];
        for (int i = 0; i < length; i++)
        {
            word[i] = char.ToLowerInvariant((char)text[i]);
        }

        foreach (string candidate in Words)
        {
            if (word.SequenceEqual(candidate))
            {
                return true;
            }
        }

        return false;
    }
}

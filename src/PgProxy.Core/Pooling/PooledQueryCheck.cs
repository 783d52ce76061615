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

    /// <summary>Only <c>LISTEN</c> and <c>UNLISTEN</c> statements, in <see cref="PooledQueryCheck.Listens"/>: PgProxy's listening connection acts for the client.</summary>
    Listen,
}

/// <summary>A <c>LISTEN</c> (<paramref name="Listen"/> true) or <c>UNLISTEN</c> of a channel; <c>UNLISTEN *</c> has no channel.</summary>
internal readonly record struct ListenChange(string? Channel, bool Listen);

/// <summary>The verdict on one Query or Parse text.</summary>
internal readonly record struct PooledQueryCheck(PooledQueryEffect Effect, string? Refusal, IReadOnlyList<string>? Settings)
{
    /// <summary>Names of SQL-level <c>PREPARE</c>s: allowed inside a transaction block, deallocated when it ends.</summary>
    public IReadOnlyList<string>? Prepared { get; init; }

    /// <summary>The <c>LISTEN</c>s and <c>UNLISTEN</c>s, in order, when the effect is <see cref="PooledQueryEffect.Listen"/>.</summary>
    public IReadOnlyList<ListenChange>? Listens { get; init; }

    /// <summary>Names of SQL-level <c>DEALLOCATE</c>s.</summary>
    public IReadOnlyList<string>? Deallocated { get; init; }

    public static PooledQueryCheck Nothing => default;
}

/// <summary>
/// Finds, in a Query or Parse text, the statements that act on the whole server session and so cannot simply run on
/// whichever connection a transaction gets: <c>SET</c>/<c>RESET</c> of a setting (tracked, and replayed on the next
/// connections), <c>DISCARD ALL</c>, <c>RESET ALL</c> and <c>DEALLOCATE ALL</c> (acted on for this client only),
/// SQL-level <c>PREPARE</c> and <c>DEALLOCATE</c> (kept to the transaction block they are in), and <c>LISTEN</c>/<c>UNLISTEN</c>
/// (done by PgProxy's listening connection of the database, <see cref="NotificationHub"/>). Most texts are decided by a
/// look at the first word of each statement, with no parse and no allocation.
/// </summary>
internal static partial class PooledQueryChecker
{
    [System.Text.RegularExpressions.GeneratedRegex(@"set_config\s*\(\s*'(?<name>(?:[^']|'')+)'", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex SetConfigCall();

    private static readonly string[] Words = ["set", "reset", "discard", "deallocate", "prepare", "execute", "listen", "unlisten"];

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
        List<string>? prepared = null;
        List<string>? deallocated = null;
        List<ListenChange>? listens = null;
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
                    (prepared ??= []).Add(node.PrepareStmt.Name);
                    break;
                case Node.NodeOneofCase.DeallocateStmt:
                    (deallocated ??= []).Add(node.DeallocateStmt.Name);
                    break;
                case Node.NodeOneofCase.ListenStmt:
                    (listens ??= []).Add(new ListenChange(node.ListenStmt.Conditionname, Listen: true));
                    break;
                case Node.NodeOneofCase.UnlistenStmt:
                    string channel = node.UnlistenStmt.Conditionname;
                    (listens ??= []).Add(new ListenChange(channel.Length == 0 ? null : channel, Listen: false));
                    break;
            }
        }

        if (listens is not null)
        {
            return listens.Count == tree.Stmts.Count
                ? new PooledQueryCheck(PooledQueryEffect.Listen, null, null) { Listens = listens }
                : Refused("LISTEN and UNLISTEN must be sent without other statements in transaction pooling: PgProxy's listening connection runs them for the client");
        }

        if (whole != PooledQueryEffect.None && tree.Stmts.Count > 1)
        {
            return Refused("DISCARD ALL, RESET ALL and DEALLOCATE ALL must be sent alone in transaction pooling, so that they act on this client's statements and settings only");
        }

        return new PooledQueryCheck(whole, null, settings) { Prepared = prepared, Deallocated = deallocated };
    }

    private static PooledQueryCheck Refused(string message) => new(PooledQueryEffect.Refuse, message, null);

    /// <summary>The refusal of a SQL-level PREPARE outside a transaction block.</summary>
    public const string PrepareOutsideTransaction =
        "SQL-level PREPARE outside a transaction block cannot follow a client from one server connection to the next in transaction pooling: " +
        "inside BEGIN ... COMMIT it works until the transaction ends; or use protocol-level prepared statements (Parse/Bind), which PgProxy maps, or pool.mode: session";

    /// <summary>
    /// Whether some statement of <paramref name="text"/> may begin with one of the words that matter: a statement begins
    /// at the start or after a semicolon (one inside a literal only costs a parse), past blanks and comments.
    /// </summary>
    internal static bool MayMatter(ReadOnlySpan<byte> text) => AnyStatementBegins(text, listenOnly: false);

    /// <summary>Whether some statement of <paramref name="text"/> may be a LISTEN or UNLISTEN (as <see cref="MayMatter"/> looks).</summary>
    internal static bool MayListen(ReadOnlySpan<byte> text) => AnyStatementBegins(text, listenOnly: true);

    private static bool AnyStatementBegins(ReadOnlySpan<byte> text, bool listenOnly)
    {
        int position = 0;
        while (true)
        {
            position = SkipBlanks(text, position);
            ReadOnlySpan<byte> rest = text[position..];
            if (listenOnly ? StartsWithWordIgnoringCase(rest, "listen"u8) || StartsWithWordIgnoringCase(rest, "unlisten"u8) : StartsWithWord(rest))
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

    /// <summary>Whether the text's first statement opens a transaction block (BEGIN or START TRANSACTION): a cheap look, no parse.</summary>
    internal static bool BeginsTransaction(ReadOnlySpan<byte> text)
    {
        ReadOnlySpan<byte> rest = text[SkipBlanks(text, 0)..];
        return StartsWithWordIgnoringCase(rest, "begin"u8) || StartsWithWordIgnoringCase(rest, "start"u8);
    }

    private static bool StartsWithWordIgnoringCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> word)
    {
        if (text.Length < word.Length || (text.Length > word.Length && char.IsAsciiLetterOrDigit((char)text[word.Length])))
        {
            return false;
        }

        for (int i = 0; i < word.Length; i++)
        {
            if ((text[i] | 0x20) != word[i])
            {
                return false;
            }
        }

        return true;
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

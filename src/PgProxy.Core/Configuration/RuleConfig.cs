using System.Net;
using System.Text.RegularExpressions;

namespace PgProxy.Core.Configuration;

/// <summary>
/// One entry of <c>instances[].rules</c>: what to match, and what to do with a statement that matches. Read and
/// validated by <see cref="RulesConfigReader"/>; the rule engine (<c>Rules.RuleSet</c>) turns the list into the runtime object.
/// </summary>
/// <param name="Name">Unique within the instance; names the rule in logs, counters and <c>pgproxy test-rules</c>.</param>
/// <param name="Line">The line of the rule's entry, for messages that point back at the file.</param>
public sealed record RuleConfig(string Name, int Line)
{
    /// <summary><c>match</c>: every condition given must hold. Empty matches every statement.</summary>
    public RuleMatch Match { get; init; } = RuleMatch.Everything;

    /// <summary><c>refuse</c>: the statement is replaced by one that makes the server raise this error. Null when absent.</summary>
    public RuleRefusal? Refuse { get; init; }

    /// <summary>
    /// <c>rewrite</c>: the replacement of every span <see cref="RuleMatch.Query"/> matches, with <c>$1</c>, <c>${name}</c>
    /// and <c>$$</c> as in .NET's <see cref="Regex.Replace(string, string)"/>. Null when absent.
    /// </summary>
    public string? Rewrite { get; init; }

    /// <summary><c>tag</c>: prepended to the statement as <c>/* TAG */ </c>. Never holds <c>/*</c> or <c>*/</c>. Null when absent.</summary>
    public string? Tag { get; init; }

    /// <summary><c>log</c>: a line in the intercept log, with the rule's name, for each statement it matches.</summary>
    public bool Log { get; init; }

    /// <summary><c>mode</c>: enforce (default), or log-only (matched, counted and logged, never changes traffic).</summary>
    public RuleMode Mode { get; init; } = RuleMode.Enforce;

    /// <summary><c>continue</c>: after this rule changes a statement, later rules still run, on the changed text.</summary>
    public bool Continue { get; init; }

    /// <summary>True when the rule changes what it matches (rewrite, tag or refuse), as opposed to only logging it.</summary>
    public bool Changes => Refuse is not null || Rewrite is not null || Tag is not null;
}

/// <summary><c>match</c> of a rule. A list that is empty, or a key that is null, is not a condition.</summary>
public sealed record RuleMatch
{
    /// <summary>No condition: matches every statement.</summary>
    public static RuleMatch Everything { get; } = new();

    /// <summary><c>statement</c>: the statement must be of one of these kinds. <see cref="StatementKinds.None"/>: any kind.</summary>
    public StatementKinds Statements { get; init; }

    /// <summary><c>user</c>: the session's user is one of these names or matches one of these patterns.</summary>
    public IReadOnlyList<NamePattern> Users { get; init; } = [];

    /// <summary><c>database</c>: the session's database, as <see cref="Users"/>.</summary>
    public IReadOnlyList<NamePattern> Databases { get; init; } = [];

    /// <summary><c>application-name</c>: the session's application_name, as <see cref="Users"/>.</summary>
    public IReadOnlyList<NamePattern> ApplicationNames { get; init; } = [];

    /// <summary><c>client</c>: the client's address lies in one of these networks (IPv4-mapped IPv6 addresses count as IPv4).</summary>
    public IReadOnlyList<IPNetwork> Clients { get; init; } = [];

    /// <summary><c>protocol</c>: only simple Query messages, or only extended Parse messages. Null: both.</summary>
    public QueryProtocol? Protocol { get; init; }

    /// <summary><c>tables</c>: the statement reads or writes one of these relations.</summary>
    public IReadOnlyList<TableName> Tables { get; init; } = [];

    /// <summary><c>fingerprint</c>: the statement's libpg_query fingerprint is one of these (16 lowercase hex digits).</summary>
    public IReadOnlyList<string> Fingerprints { get; init; } = [];

    /// <summary><c>query</c>: the regular expression that must match the statement's text. Null: no condition on the text.</summary>
    public RulePattern? Query { get; init; }

    /// <summary>
    /// <c>anywhere</c>: a <see cref="Query"/> match may start inside a string literal, a comment or a dollar-quoted body.
    /// False (the default): such a match is passed over.
    /// </summary>
    public bool Anywhere { get; init; }
}

/// <summary><c>refuse</c>: the SQLSTATE and message the client receives.</summary>
public sealed record RuleRefusal(string SqlState, string Message)
{
    /// <summary>The SQLSTATE when <c>refuse</c> names none: insufficient_privilege, as PostgreSQL raises for a forbidden statement.</summary>
    public const string DefaultSqlState = "42501";
}

/// <summary>A relation named by <c>tables</c>; the schema is optional. Both parts are folded as PostgreSQL folds identifiers.</summary>
/// <param name="Schema">The schema, or null for a name that matches the relation in any schema.</param>
/// <param name="Name">The relation's name.</param>
public sealed record TableName(string? Schema, string Name)
{
    /// <summary>The name as the configuration would write it (for messages).</summary>
    public override string ToString() => Schema is null ? Name : $"{Schema}.{Name}";
}

/// <summary>A name to match: exact (ordinal, as PostgreSQL compares names), or a regular expression written <c>/.../</c>.</summary>
public sealed class NamePattern : IEquatable<NamePattern>
{
    private readonly Regex? regex;

    internal NamePattern(string text, Regex? regex)
    {
        Text = text;
        this.regex = regex;
    }

    /// <summary>The value as written in the file: a name, or <c>/pattern/</c>.</summary>
    public string Text { get; }

    /// <summary>True for the <c>/pattern/</c> form.</summary>
    public bool IsPattern => regex is not null;

    /// <summary>Whether <paramref name="name"/> is this name or matches this pattern.</summary>
    /// <exception cref="RegexMatchTimeoutException">The pattern ran past <c>settings.rule-timeout</c>.</exception>
    public bool IsMatch(string name) => regex is null ? string.Equals(Text, name, StringComparison.Ordinal) : regex.IsMatch(name);

    /// <summary>The compiled pattern of the <c>/pattern/</c> form; null for an exact name.</summary>
    internal Regex? Regex => regex;

    public bool Equals(NamePattern? other) => other is not null && string.Equals(Text, other.Text, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as NamePattern);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Text);

    public override string ToString() => Text;
}

/// <summary>
/// A <c>query</c> regular expression, compiled once when the file is read: with the linear-time engine
/// (<see cref="RegexOptions.NonBacktracking"/>) when the pattern allows it, otherwise with the backtracking engine, which
/// backreferences and lookarounds need. Either way with <c>settings.rule-timeout</c> as its match timeout.
/// </summary>
public sealed class RulePattern : IEquatable<RulePattern>
{
    internal RulePattern(string pattern, Regex regex)
    {
        Pattern = pattern;
        Regex = regex;
    }

    /// <summary>The pattern as written in the file.</summary>
    public string Pattern { get; }

    /// <summary>The compiled expression. Immutable and safe to share between threads.</summary>
    public Regex Regex { get; }

    /// <summary>True when the linear-time engine runs it; false when it backtracks, and only its timeout bounds it.</summary>
    public bool IsLinear => (Regex.Options & RegexOptions.NonBacktracking) != 0;

    public bool Equals(RulePattern? other) =>
        other is not null && string.Equals(Pattern, other.Pattern, StringComparison.Ordinal) && Regex.MatchTimeout == other.Regex.MatchTimeout;

    public override bool Equals(object? obj) => Equals(obj as RulePattern);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Pattern);

    public override string ToString() => Pattern;
}

/// <summary><c>mode</c> of a rule, and <c>settings.rules-mode</c>.</summary>
public enum RuleMode
{
    /// <summary>The rule's actions change traffic. The default.</summary>
    Enforce,

    /// <summary>A dry run: the rule is matched, counted and logged with the text it would produce; traffic is unchanged.</summary>
    LogOnly,
}

/// <summary>Which message carried a query: <c>match.protocol</c>.</summary>
public enum QueryProtocol
{
    /// <summary>A simple-protocol Query message, which may hold several statements.</summary>
    Simple,

    /// <summary>An extended-protocol Parse message: one statement.</summary>
    Extended,
}

/// <summary>
/// Kinds of statements, as <c>match.statement</c> names them and the parser tells them apart. A set: a statement is of
/// its own kind and also of the kind of every INSERT, UPDATE, DELETE or MERGE it holds (a data-modifying WITH, an
/// EXPLAIN, a <c>COPY (...) TO</c>, a PREPARE).
/// </summary>
[Flags]
public enum StatementKinds
{
    /// <summary>No kind: as a condition, any statement.</summary>
    None = 0,

    /// <summary>SELECT, VALUES, TABLE (but SELECT INTO, which creates a table, is DDL, as PostgreSQL's log_statement counts it).</summary>
    Select = 1 << 0,

    /// <summary>INSERT.</summary>
    Insert = 1 << 1,

    /// <summary>UPDATE.</summary>
    Update = 1 << 2,

    /// <summary>DELETE.</summary>
    Delete = 1 << 3,

    /// <summary>MERGE.</summary>
    Merge = 1 << 4,

    /// <summary>
    /// What PostgreSQL's <c>log_statement = ddl</c> logs (CREATE, ALTER, DROP, GRANT, REVOKE, COMMENT, CREATE TABLE AS,
    /// SELECT INTO, REFRESH MATERIALIZED VIEW, CLUSTER, ...), and TRUNCATE, which it counts as a modification.
    /// </summary>
    Ddl = 1 << 5,

    /// <summary>COPY, either way.</summary>
    Copy = 1 << 6,

    /// <summary>BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, PREPARE TRANSACTION and the like.</summary>
    Transaction = 1 << 7,

    /// <summary>SET and RESET (SET TRANSACTION, SET ROLE and SET SESSION AUTHORIZATION included).</summary>
    Set = 1 << 8,

    /// <summary>Everything else: EXPLAIN, SHOW, DO, CALL, VACUUM, ANALYZE, LOCK, LISTEN, NOTIFY, PREPARE, EXECUTE, DISCARD, cursors...</summary>
    Utility = 1 << 9,
}

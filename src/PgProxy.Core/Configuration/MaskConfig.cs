using System.Net;
using System.Text.RegularExpressions;

namespace PgProxy.Core.Configuration;

/// <summary>
/// One entry of <c>instances[].masks</c>: which result columns to mask, with what, for whom, and what to do with
/// statements that would get around it. Read and validated by <see cref="MasksConfigReader"/>; the runtime object is
/// <c>Masks.MaskSet</c>.
/// </summary>
/// <param name="Name">Unique within the instance; names the mask in logs, counters, refusals and <c>pgproxy test-rules</c>.</param>
/// <param name="Line">The line of the mask's entry, for messages that point back at the file.</param>
/// <param name="Columns"><c>columns</c>: at least one.</param>
/// <param name="With"><c>with</c>: what a masked value becomes.</param>
public sealed record MaskConfig(string Name, int Line, IReadOnlyList<MaskColumn> Columns, MaskFunction With)
{
    /// <summary><c>unless</c>: sessions this mask does not apply to. Empty: it applies to every session.</summary>
    public MaskExemption Unless { get; init; } = MaskExemption.Nobody;

    /// <summary><c>computed</c>: refuse (default) or pass a statement that computes over a masked column.</summary>
    public MaskPolicy Computed { get; init; } = MaskPolicy.Refuse;

    /// <summary><c>copy</c>: refuse (default) or pass <c>COPY ... TO</c> of a masked table.</summary>
    public MaskPolicy Copy { get; init; } = MaskPolicy.Refuse;

    /// <summary><c>mode</c>: enforce (default), or log-only (counted and logged, traffic unchanged).</summary>
    public RuleMode Mode { get; init; } = RuleMode.Enforce;
}

/// <summary>
/// A column named by <c>columns</c>: <c>schema.table.column</c>, <c>table.column</c> (any schema) or <c>*.column</c>
/// (any relation, and also a result column with no source table that is named so). Names fold as PostgreSQL folds
/// identifiers; a null part is a wildcard.
/// </summary>
public sealed record MaskColumn(string? Schema, string? Table, string Column)
{
    /// <summary>Whether this names <paramref name="column"/> of the relation <paramref name="schema"/>.<paramref name="table"/>.</summary>
    public bool Covers(string schema, string table, string column) =>
        string.Equals(Column, column, StringComparison.Ordinal)
        && (Table is null || string.Equals(Table, table, StringComparison.Ordinal))
        && (Schema is null || string.Equals(Schema, schema, StringComparison.Ordinal));

    /// <summary>True for <c>*.column</c>: it also covers result columns without a source named <see cref="Column"/>.</summary>
    public bool IsOutputName => Table is null && Schema is null;

    /// <summary>The column as the configuration writes it (for messages).</summary>
    public override string ToString() => Schema is null ? $"{Table ?? "*"}.{Column}" : $"{Schema}.{Table ?? "*"}.{Column}";
}

/// <summary><c>unless</c> of a mask: the subject keys of a rule's <c>match</c>; a session that meets every key given is exempt.</summary>
public sealed record MaskExemption
{
    /// <summary>No key: nobody is exempt.</summary>
    public static MaskExemption Nobody { get; } = new();

    public IReadOnlyList<NamePattern> Users { get; init; } = [];

    public IReadOnlyList<NamePattern> Databases { get; init; } = [];

    public IReadOnlyList<NamePattern> ApplicationNames { get; init; } = [];

    public IReadOnlyList<IPNetwork> Clients { get; init; } = [];

    /// <summary>True when no key is given.</summary>
    public bool IsEmpty => Users.Count == 0 && Databases.Count == 0 && ApplicationNames.Count == 0 && Clients.Count == 0;
}

/// <summary><c>computed</c> and <c>copy</c>.</summary>
public enum MaskPolicy
{
    /// <summary>The statement is refused with 42501 before it runs. The default.</summary>
    Refuse,

    /// <summary>The statement runs; what it returns is not masked (there is no source column to mask).</summary>
    Pass,
}

/// <summary>The kinds of <c>with</c>.</summary>
public enum MaskFunctionKind
{
    /// <summary><c>null</c>: the value becomes SQL NULL. Keeps every type, in both formats.</summary>
    Null,

    /// <summary><c>hash</c>: the lowercase hex SHA-256 of the value's UTF-8 bytes (the same value always gives the same hash).</summary>
    Hash,

    /// <summary><c>email</c>: <c>alice@example.com</c> becomes <c>a***@example.com</c>; text without '@' becomes <c>***</c>.</summary>
    Email,

    /// <summary><c>{constant: TEXT}</c>: the value becomes TEXT.</summary>
    Constant,

    /// <summary><c>{keep-last: N}</c>: every character but the last N becomes '*'; a value of N characters or fewer is masked whole.</summary>
    KeepLast,

    /// <summary><c>{regex: PATTERN, replace: TEXT}</c>: every match of PATTERN is replaced, as .NET's Regex.Replace does.</summary>
    Regex,
}

/// <summary><c>with</c> of a mask: a function and its argument.</summary>
public sealed record MaskFunction(MaskFunctionKind Kind)
{
    /// <summary><c>{constant: TEXT}</c>'s text.</summary>
    public string? Constant { get; init; }

    /// <summary><c>{keep-last: N}</c>'s N.</summary>
    public int KeepLast { get; init; }

    /// <summary><c>{regex: ...}</c>, compiled with <c>settings.rule-timeout</c>.</summary>
    public Regex? Pattern { get; init; }

    /// <summary><c>replace</c> of <c>{regex: ...}</c>.</summary>
    public string? Replacement { get; init; }

    /// <summary>
    /// True when the function keeps any type: only <c>null</c> does. The others produce text, which keeps the type only of
    /// string types (text, varchar, char, name, citext, domains over them), whose text and binary formats are the same bytes.
    /// </summary>
    public bool KeepsEveryType => Kind == MaskFunctionKind.Null;

    /// <summary>The function as the configuration writes it (for messages).</summary>
    public override string ToString() => Kind switch
    {
        MaskFunctionKind.Null => "null",
        MaskFunctionKind.Hash => "hash",
        MaskFunctionKind.Email => "email",
        MaskFunctionKind.Constant => "constant",
        MaskFunctionKind.KeepLast => "keep-last",
        _ => "regex",
    };
}

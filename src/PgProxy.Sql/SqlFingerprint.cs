namespace PgProxy.Sql;

/// <summary>
/// libpg_query's fingerprint of a query: equal for queries that differ only in constants, whitespace, comments,
/// letter case of keywords, or the order of some lists (IN lists are treated as one constant).
/// </summary>
/// <param name="Value">The 64-bit fingerprint.</param>
/// <param name="Text">The same as 16 lowercase hexadecimal digits, as pg_query and pg_stat_statements tools print it.</param>
public readonly record struct SqlFingerprint(ulong Value, string Text);

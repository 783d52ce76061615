namespace PgProxy.Sql;

/// <summary>
/// One token of PostgreSQL's lexer, as <see cref="PostgresParser.Scan"/> returns it.
/// </summary>
/// <param name="Start">String index of the token's first character.</param>
/// <param name="End">String index just past the token's last character (exclusive).</param>
/// <param name="Kind">The lexer's token: a single character such as <see cref="PgQuery.Token.Ascii40"/> for <c>(</c>,
/// <see cref="PgQuery.Token.Ident"/> (quoted or not), <see cref="PgQuery.Token.Sconst"/>, an operator, or a keyword.</param>
/// <param name="KeywordKind">For a keyword, how reserved it is; <see cref="PgQuery.KeywordKind.NoKeyword"/> otherwise.</param>
public readonly record struct SqlToken(int Start, int End, PgQuery.Token Kind, PgQuery.KeywordKind KeywordKind)
{
    /// <summary>Number of characters the token spans in the query string.</summary>
    public int Length => End - Start;
}

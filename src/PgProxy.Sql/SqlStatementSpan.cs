namespace PgProxy.Sql;

/// <summary>Where one statement lies in a text of several, in string indexes (see <see cref="PostgresParser.Split"/>).</summary>
/// <param name="Start">String index of the statement's first character.</param>
/// <param name="Length">Number of characters, without the <c>;</c> that ends it.</param>
public readonly record struct SqlStatementSpan(int Start, int Length)
{
    /// <summary>String index just past the statement (exclusive).</summary>
    public int End => Start + Length;

    /// <summary>The statement's text within <paramref name="sql"/>, the text it was split from.</summary>
    public string TextOf(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return sql.Substring(Start, Length);
    }
}

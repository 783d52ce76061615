namespace PgProxy.Sql;

/// <summary>The PostgreSQL parser rejected a query: the message PostgreSQL would give, and where in the query.</summary>
public sealed class SqlParseException : Exception
{
    public SqlParseException()
    {
    }

    public SqlParseException(string message)
        : base(message)
    {
    }

    public SqlParseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public SqlParseException(string message, int cursorPosition)
        : base(message)
    {
        CursorPosition = cursorPosition;
    }

    /// <summary>1-based character position in the query where the parser stopped, as PostgreSQL reports it; 0 when unknown.</summary>
    public int CursorPosition { get; }
}

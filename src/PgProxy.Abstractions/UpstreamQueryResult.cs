namespace PgProxy.Abstractions;

/// <summary>Rows of a metadata query run on the upstream, every value as text (null for SQL NULL).</summary>
public sealed class UpstreamQueryResult
{
    /// <summary>Creates a result.</summary>
    public UpstreamQueryResult(IReadOnlyList<string> columns, IReadOnlyList<IReadOnlyList<string?>> rows)
    {
        Columns = columns;
        Rows = rows;
    }

    /// <summary>Column names, in order.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Rows, each with one value per column.</summary>
    public IReadOnlyList<IReadOnlyList<string?>> Rows { get; }
}

/// <summary>A metadata query could not run: the server's error, or a session state that does not allow it.</summary>
public sealed class UpstreamQueryException : Exception
{
    /// <summary>Creates an exception with a generic message.</summary>
    public UpstreamQueryException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public UpstreamQueryException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public UpstreamQueryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception for an error the server reported.</summary>
    public UpstreamQueryException(string sqlState, string message)
        : base(message)
    {
        SqlState = sqlState;
    }

    /// <summary>The SQLSTATE the server reported, when it did.</summary>
    public string? SqlState { get; }
}

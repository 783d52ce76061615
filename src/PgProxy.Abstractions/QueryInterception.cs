namespace PgProxy.Abstractions;

/// <summary>Which message carried a query.</summary>
public enum QueryMessageKind
{
    /// <summary>A simple-protocol Query ('Q'): the text may hold several statements.</summary>
    SimpleQuery,

    /// <summary>An extended-protocol Parse ('P'): one statement, perhaps with parameters.</summary>
    Parse,
}

/// <summary>A query a client sent, decoded in the session's client encoding.</summary>
public sealed class QueryMessage
{
    /// <summary>Creates a query as an interceptor sees it.</summary>
    public QueryMessage(QueryMessageKind kind, string text, string? statementName, IReadOnlyList<uint> parameterTypes)
    {
        Kind = kind;
        Text = text;
        StatementName = statementName;
        ParameterTypes = parameterTypes;
    }

    /// <summary>Which message carried the query.</summary>
    public QueryMessageKind Kind { get; }

    /// <summary>The SQL text.</summary>
    public string Text { get; }

    /// <summary>For Parse: the prepared statement's name ("" for the unnamed statement). Null for a simple query.</summary>
    public string? StatementName { get; }

    /// <summary>For Parse: the parameter type OIDs the client declared (0 = let the server infer). Kept as sent.</summary>
    public IReadOnlyList<uint> ParameterTypes { get; }
}

/// <summary>What a query interceptor decided.</summary>
public readonly record struct QueryDecision
{
    private QueryDecision(string? text, string? sqlState, string? message)
    {
        RewrittenText = text;
        RefusalSqlState = sqlState;
        RefusalMessage = message;
    }

    /// <summary>Forward the query as it is (or as an earlier interceptor left it).</summary>
    public static QueryDecision Continue => default;

    /// <summary>The new text, when the query is rewritten.</summary>
    public string? RewrittenText { get; }

    /// <summary>The SQLSTATE the client receives, when the query is refused.</summary>
    public string? RefusalSqlState { get; }

    /// <summary>The message the client receives, when the query is refused.</summary>
    public string? RefusalMessage { get; }

    /// <summary>True when the query is refused.</summary>
    public bool IsRefusal => RefusalSqlState is not null;

    /// <summary>Forward <paramref name="text"/> instead of the query.</summary>
    public static QueryDecision Rewrite(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null, null);

    /// <summary>Do not run the query: the client receives an ErrorResponse with this SQLSTATE and message.</summary>
    public static QueryDecision Refuse(string sqlState, string message) => new(null, SqlStateRules.Validate(sqlState), message ?? throw new ArgumentNullException(nameof(message)));
}

/// <summary>Sees the text of every Query and Parse of the sessions of the instances it is configured on.</summary>
public interface IQueryInterceptor
{
    /// <summary>Decides what happens to one query: forward it, rewrite it, or refuse it.</summary>
    ValueTask<QueryDecision> InterceptQueryAsync(QueryMessage query, ISessionContext session, CancellationToken cancellationToken);
}

/// <summary>Thrown by a plugin function to refuse a query or a connection with a SQLSTATE of its choosing.</summary>
public sealed class RefusedException : Exception
{
    /// <summary>Refuses with 42501 and a generic message.</summary>
    public RefusedException()
        : this("42501", "refused by PgProxy")
    {
    }

    /// <summary>Refuses with 42501 and <paramref name="message"/>.</summary>
    public RefusedException(string message)
        : this("42501", message)
    {
    }

    /// <summary>Refuses with 42501, keeping the cause.</summary>
    public RefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
        SqlState = "42501";
    }

    /// <summary>Refuses with <paramref name="sqlState"/> and <paramref name="message"/>.</summary>
    public RefusedException(string sqlState, string message)
        : base(message)
    {
        SqlState = SqlStateRules.Validate(sqlState);
    }

    /// <summary>The SQLSTATE the client receives (42501, insufficient privilege, by default).</summary>
    public string SqlState { get; }
}

/// <summary>SQLSTATE codes are five characters, digits and upper-case letters.</summary>
public static class SqlStateRules
{
    /// <summary>Returns <paramref name="sqlState"/> when it is a valid SQLSTATE; throws otherwise.</summary>
    public static string Validate(string sqlState)
    {
        ArgumentNullException.ThrowIfNull(sqlState);
        if (sqlState.Length != 5 || !sqlState.All(c => c is (>= '0' and <= '9') or (>= 'A' and <= 'Z')))
        {
            throw new ArgumentException($"'{sqlState}' is not a SQLSTATE: five digits or upper-case letters", nameof(sqlState));
        }

        return sqlState;
    }
}

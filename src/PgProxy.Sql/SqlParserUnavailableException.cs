namespace PgProxy.Sql;

/// <summary>The native parser library (libpg_query) could not be loaded; the message says which package to install.</summary>
public sealed class SqlParserUnavailableException : Exception
{
    public SqlParserUnavailableException()
    {
    }

    public SqlParserUnavailableException(string message)
        : base(message)
    {
    }

    public SqlParserUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

namespace PgProxy.Protocol.Backend;

/// <summary>The one-byte tokens that name the fields of an ErrorResponse or NoticeResponse.</summary>
public static class ErrorFieldCodes
{
    /// <summary>Severity, possibly localized: ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO or LOG.</summary>
    public const char Severity = 'S';

    /// <summary>Severity, never localized (PostgreSQL 9.6 and later).</summary>
    public const char SeverityNonLocalized = 'V';

    /// <summary>The SQLSTATE code.</summary>
    public const char SqlState = 'C';

    /// <summary>The primary message.</summary>
    public const char Message = 'M';

    /// <summary>An optional secondary message.</summary>
    public const char Detail = 'D';

    /// <summary>An optional suggestion.</summary>
    public const char Hint = 'H';

    /// <summary>A 1-based character position into the query text, in decimal.</summary>
    public const char Position = 'P';

    /// <summary>A position into <see cref="InternalQuery"/>.</summary>
    public const char InternalPosition = 'p';

    /// <summary>The text of an internally generated command that failed.</summary>
    public const char InternalQuery = 'q';

    /// <summary>The call stack context.</summary>
    public const char Where = 'W';

    /// <summary>The schema of the object concerned.</summary>
    public const char SchemaName = 's';

    /// <summary>The table concerned.</summary>
    public const char TableName = 't';

    /// <summary>The column concerned.</summary>
    public const char ColumnName = 'c';

    /// <summary>The data type concerned.</summary>
    public const char DataTypeName = 'd';

    /// <summary>The constraint concerned.</summary>
    public const char ConstraintName = 'n';

    /// <summary>The server source file that reported the error.</summary>
    public const char File = 'F';

    /// <summary>The line in <see cref="File"/>.</summary>
    public const char Line = 'L';

    /// <summary>The server routine that reported the error.</summary>
    public const char Routine = 'R';
}

namespace PgProxy.Protocol.Backend;

/// <summary>An error the proxy itself reports to a client, with its SQLSTATE.</summary>
public sealed record ProtocolError(string SqlState, string Message)
{
    public static ProtocolError InvalidStartupPacketLength { get; } = new(SqlStates.ProtocolViolation, "invalid length of startup packet");
}

/// <summary>The SQLSTATE codes PgProxy raises itself.</summary>
public static class SqlStates
{
    public const string ProtocolViolation = "08P01";
    public const string SqlClientUnableToEstablishSqlConnection = "08001";
    public const string ConnectionFailure = "08006";
    public const string FeatureNotSupported = "0A000";
    public const string InvalidAuthorizationSpecification = "28000";
    public const string InvalidPassword = "28P01";
    public const string SyntaxError = "42601";
    public const string UndefinedObject = "42704";
    public const string TooManyConnections = "53300";
    public const string ProgramLimitExceeded = "54000";
    public const string ObjectNotInPrerequisiteState = "55000";
    public const string AdminShutdown = "57P01";

    /// <summary>idle_session_timeout's code in PostgreSQL 14 and later: PgProxy's limits.client-idle-timeout uses it too.</summary>
    public const string IdleSessionTimeout = "57P05";
    public const string ConfigFileError = "F0000";
    public const string InternalError = "XX000";
}

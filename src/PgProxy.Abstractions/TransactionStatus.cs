namespace PgProxy.Abstractions;

/// <summary>The session's transaction status, as the server's last ReadyForQuery reported it.</summary>
public enum TransactionStatus : byte
{
    /// <summary>No ReadyForQuery yet: the session is still logging in.</summary>
    Unknown = 0,

    /// <summary>Between transactions.</summary>
    Idle = (byte)'I',

    /// <summary>Inside a transaction block.</summary>
    InTransaction = (byte)'T',

    /// <summary>Inside a failed transaction block: statements are refused until it ends.</summary>
    Failed = (byte)'E',
}

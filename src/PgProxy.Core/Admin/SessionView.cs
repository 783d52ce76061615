namespace PgProxy.Core.Admin;

/// <summary>What a session is doing, as SHOW SESSIONS names it (the words of pg_stat_activity.state).</summary>
internal enum SessionState
{
    /// <summary>Not logged in to its server yet: reading the start-up, connecting, authenticating (up to the server's first ReadyForQuery).</summary>
    Waiting,

    /// <summary>Between statements, outside a transaction.</summary>
    Idle,

    /// <summary>A request is in flight: the server has not answered every Query or Sync yet.</summary>
    Active,

    /// <summary>Between statements inside a transaction (or a failed one).</summary>
    IdleInTransaction,
}

/// <summary>One session at one moment, for SHOW SESSIONS: each value read once, so a row is consistent with itself.</summary>
/// <param name="Id">The session's id, which KILL and CANCEL take.</param>
/// <param name="Instance">The instance it came in on (<c>admin</c> on the console's own listener).</param>
/// <param name="Client">The client's address and port.</param>
/// <param name="User">The user it logs in as; null before its start-up arrived.</param>
/// <param name="Database">Its database; null before its start-up arrived.</param>
/// <param name="ApplicationName">Its application_name, as the server last reported it; null when none.</param>
/// <param name="ClientTls">Whether the client's leg is TLS.</param>
/// <param name="ServerTls">Whether the server's leg is TLS; null without a server connection.</param>
/// <param name="State">What it is doing.</param>
/// <param name="Fingerprint">The running statement's fingerprint; null while the relay does not track it.</param>
/// <param name="Statement">The running statement's first characters, literals removed; null while the relay does not track it.</param>
/// <param name="Since">When the client connected.</param>
/// <param name="BytesFromClient">Bytes the client sent that were relayed (or read by the console).</param>
/// <param name="BytesToClient">Bytes sent to the client.</param>
/// <param name="Console">A console session (answered by PgProxy, never relayed).</param>
internal sealed record SessionView(
    long Id,
    string Instance,
    string Client,
    string? User,
    string? Database,
    string? ApplicationName,
    bool ClientTls,
    bool? ServerTls,
    SessionState State,
    string? Fingerprint,
    string? Statement,
    DateTimeOffset Since,
    long BytesFromClient,
    long BytesToClient,
    bool Console = false);

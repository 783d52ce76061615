using System.Buffers;
using PgProxy.Core.Admin;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;
using PgProxy.Protocol;
using PgProxy.Protocol.Startup;
using PgProxy.Sql;

namespace PgProxy.Core.Sessions;

/// <summary>
/// What the admin console sees of a session and does to it: a read-only view for SHOW SESSIONS, KILL and CANCEL, and
/// the console session itself (a start-up for database <c>pgproxy</c>, or any on the console's own listener), which is
/// answered by PgProxy and never linked to a server. Kept apart from the relay: the relay only tells this part who the
/// session is and when its server is linked.
/// </summary>
internal sealed partial class ProxySession
{
    private readonly DateTimeOffset since = DateTimeOffset.UtcNow;
    private Identity? identity;
    private Link? link;
    private AdminSession? console;
    private int killed;

    /// <summary>Who the session logs in as, from its start-up (as the start-up interceptors left it).</summary>
    private sealed record Identity(string User, string Database, string? ApplicationName);

    /// <summary>The server connection and the pumps, once linked.</summary>
    private sealed record Link(UpstreamLeg Upstream, ForwardingPump Frontend, ForwardingPump Backend, StatementTimer? Timer);

    /// <summary>The session as it is now: every value read once.</summary>
    public SessionView Describe()
    {
        Identity? who = Volatile.Read(ref identity);
        Link? linked = Volatile.Read(ref link);
        AdminSession? consoleSession = Volatile.Read(ref console);
        string? applicationName = who?.ApplicationName;
        if (linked is not null && state.Parameters.TryGetValue("application_name", out string? reported))
        {
            // A SET application_name is reported by the server; the start-up's value is only the first one.
            applicationName = reported;
        }

        // The statement the server runs now (or next), as the statistics know it: normalized, so no literal shows.
        QueryShape? running = linked?.Timer?.Running;
        if (running is { Fingerprint: 0 })
        {
            running = null;
        }

        return new SessionView(
            Id,
            environment.InstanceName,
            client.Address,
            who?.User,
            who?.Database,
            applicationName,
            client.Encrypted,
            linked?.Upstream.Encrypted,
            StateOf(consoleSession, linked),
            Fingerprint: running?.FingerprintText,
            Statement: running is null ? null : FirstCharacters(PasswordRedaction.Redact(running.NormalizedText)),
            since,
            consoleSession?.BytesFromClient ?? linked?.Frontend.BytesForwarded ?? 0,
            consoleSession?.BytesToClient ?? linked?.Backend.BytesForwarded ?? 0,
            consoleSession is not null);
    }

    /// <summary>The first 100 characters SHOW SESSIONS shows, cut after the redaction so a cut literal cannot hide from it.</summary>
    private static string FirstCharacters(string text) => text.Length <= 100 ? text : text[..100];

    /// <summary>What the session is doing now, read without copying anything: for the sessions-by-state gauge at each scrape.</summary>
    public SessionState State => StateOf(Volatile.Read(ref console), Volatile.Read(ref link));

    /// <summary>The instance the session came in on (<c>admin</c> on the console's own listener).</summary>
    public string InstanceName => environment.InstanceName;

    /// <summary>A console session, answered by PgProxy (false before its start-up arrived).</summary>
    public bool IsConsole => Volatile.Read(ref console) is not null;

    /// <summary>
    /// KILL: ends the session now, busy or not, through the shutdown's own path: the client hears FATAL 57P01 (when the
    /// stream is between messages) and the server connection gets a Terminate and is closed. A statement still running
    /// is cancelled first, so the server's backend ends now rather than when the statement would have.
    /// </summary>
    public void Kill()
    {
        Volatile.Write(ref killed, 1);
        AdminLog.SessionKilled(environment.Logger, Id);
        if (Volatile.Read(ref link) is not null && state.OutstandingRequests > 0)
        {
            _ = CancelAsync();
        }

        Abort();
    }

    /// <summary>CANCEL: a CancelRequest to the session's server with its BackendKeyData, sent the way the session's connection was made.</summary>
    public async Task<CancelOutcome> CancelAsync()
    {
        if (Volatile.Read(ref console) is not null || Volatile.Read(ref link) is null || state.BackendKey is not { } key)
        {
            return CancelOutcome.NoServer;
        }

        var buffer = new ReadOnlySequence<byte>(StartupPacketWriter.BuildCancelRequest(key.ProcessId, key.SecretKey));
        StartupPacketReader.TryRead(ref buffer, out StartupPacket? cancel, out _);
        await ServerConnection.ForwardCancelAsync(environment, security, loop, Id, cancel!, "the admin console").ConfigureAwait(false);
        return CancelOutcome.Sent;
    }

    /// <summary>Whether PgProxy answers this start-up itself: the console is configured and asked for (always, on its own listener).</summary>
    private bool IsForConsole(StartupPacket startup) =>
        environment.Console is not null
        && (environment.ConsoleOnly || (startup.GetParameter("database") ?? startup.GetParameter("user")) == AdminConfig.Database);

    /// <summary>Runs a console session on the client connection; no server connection is made.</summary>
    private async Task RunConsoleAsync(StartupPacket startup)
    {
        var session = new AdminSession(Id, client, environment, environment.Console!, startup.GetParameter("user") ?? string.Empty);
        Volatile.Write(ref console, session);
        await session.RunAsync(startup, stopping.Token).ConfigureAwait(false);
    }

    private void Identify(string user, string database, string? applicationName) =>
        Volatile.Write(ref identity, new Identity(user, database, applicationName));

    private void Linked(UpstreamLeg upstream, ForwardingPump frontend, ForwardingPump backend, StatementTimer? timer) =>
        Volatile.Write(ref link, new Link(upstream, frontend, backend, timer));

    /// <summary>Transaction pooling: the same pumps, now on another server connection.</summary>
    private void Relinked(UpstreamLeg upstream)
    {
        if (Volatile.Read(ref link) is { } linked && !ReferenceEquals(linked.Upstream, upstream))
        {
            Volatile.Write(ref link, linked with { Upstream = upstream });
        }
    }

    /// <summary>The close log line's reason: a KILL says so, instead of the shutdown whose path it took.</summary>
    private string EndReason(string reason) => Volatile.Read(ref killed) != 0 ? "killed from the admin console" : reason;

    /// <summary>
    /// What a relayed session is doing, from the server's protocol state as the pumps observed it. Until the server's
    /// first ReadyForQuery the session is still logging in (on plain-text legs the pumps relay the login too): waiting.
    /// </summary>
    private SessionState StateOf(AdminSession? consoleSession, Link? linked)
    {
        if (consoleSession is not null)
        {
            return consoleSession.Busy ? SessionState.Active : SessionState.Idle;
        }

        if (linked is null || state.TransactionStatus == TransactionStatus.Unknown)
        {
            return SessionState.Waiting;
        }

        if (state.OutstandingRequests > 0)
        {
            return SessionState.Active;
        }

        return state.TransactionStatus is TransactionStatus.InTransaction or TransactionStatus.Failed
            ? SessionState.IdleInTransaction
            : SessionState.Idle;
    }
}

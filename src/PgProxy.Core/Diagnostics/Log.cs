using System.Net;
using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Diagnostics;

/// <summary>Every log message of the engine, source-generated; event ids are assigned here and nowhere else.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Instance {Instance} listening on {Endpoint}, relaying to {Upstream} at {UpstreamHost}:{UpstreamPort}")]
    public static partial void InstanceListening(ILogger logger, string instance, EndPoint endpoint, string upstream, string upstreamHost, int upstreamPort);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Instance {Instance} stopped listening")]
    public static partial void InstanceStopped(ILogger logger, string instance);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Instance {Instance}: accepting a connection failed")]
    public static partial void AcceptFailed(ILogger logger, string instance, Exception exception);

    [LoggerMessage(EventId = 1610, Level = LogLevel.Warning, Message = "Session {SessionId}: upstream {Upstream} sent no ReadyForQuery within server-login-timeout ({Seconds:0.###} s) of the connect: closing its connection")]
    public static partial void ServerLoginTimedOut(ILogger logger, long sessionId, string upstream, double seconds);

    [LoggerMessage(EventId = 1611, Level = LogLevel.Error, Message = "Instance {Instance}: accepting connections failed: {Reason}; {Suppressed} more such failures in the last second were not logged")]
    public static partial void AcceptFailing(ILogger logger, string instance, string reason, long suppressed);

    [LoggerMessage(EventId = 1612, Level = LogLevel.Information, Message = "Instance {Instance}: accepting connections again after {Failures} failures")]
    public static partial void AcceptRecovered(ILogger logger, string instance, long failures);

    [LoggerMessage(EventId = 1614, Level = LogLevel.Error, Message = "Instance {Instance}: the connection from {Client} could not be given a session; closed")]
    public static partial void SessionCreationFailed(ILogger logger, string instance, EndPoint? client, Exception exception);

    [LoggerMessage(EventId = 1613, Level = LogLevel.Information, Message = "Session {SessionId}: client {Client} sent nothing for client-idle-timeout ({Seconds:0.###} s): ending the session with 57P05")]
    public static partial void ClientIdleTimedOut(ILogger logger, long sessionId, string client, double seconds);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Instance {Instance}: refused {Client}, already {Limit} sessions (max-connections)")]
    public static partial void TooManyConnections(ILogger logger, string instance, EndPoint? client, int limit);

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Session {SessionId} opened: client {Client}, user {User}, database {Database}, instance {Instance}")]
    public static partial void SessionOpened(ILogger logger, long sessionId, string client, string user, string database, string instance);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Session {SessionId} closed: client {Client}, user {User}, database {Database}, duration {DurationSeconds:0.000} s, {BytesFromClient} bytes from client, {BytesToClient} bytes to client ({Reason})")]
    public static partial void SessionClosed(ILogger logger, long sessionId, string client, string user, string database, double durationSeconds, long bytesFromClient, long bytesToClient, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Session {SessionId}: client {Client} refused before start-up: {SqlState} {Reason}")]
    public static partial void StartupRefused(ILogger logger, long sessionId, string client, string sqlState, string reason);

    [LoggerMessage(EventId = 203, Level = LogLevel.Debug, Message = "Session {SessionId}: client {Client} answered {Request} with 'N'")]
    public static partial void EncryptionRefused(ILogger logger, long sessionId, string client, string request);

    [LoggerMessage(EventId = 204, Level = LogLevel.Debug, Message = "Session {SessionId}: client {Client} left before start-up")]
    public static partial void ClosedBeforeStartup(ILogger logger, long sessionId, string client);

    [LoggerMessage(EventId = 205, Level = LogLevel.Error, Message = "Session {SessionId} failed")]
    public static partial void SessionFailed(ILogger logger, long sessionId, Exception exception);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Session {SessionId}: {Reason}")]
    public static partial void SessionProtocolError(ILogger logger, long sessionId, string reason);

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Session {SessionId}: upstream {Upstream} unreachable: {Reason}")]
    public static partial void UpstreamUnreachable(ILogger logger, long sessionId, string upstream, string reason);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Session {SessionId}: cancel request from {Client} forwarded to {Upstream}")]
    public static partial void CancelForwarded(ILogger logger, long sessionId, string client, string upstream);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Session {SessionId}: cancel request from {Client} could not reach {Upstream}: {Reason}")]
    public static partial void CancelFailed(ILogger logger, long sessionId, string client, string upstream, string reason);

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Shutting down: {Sessions} sessions to close at their next idle point, within {Timeout}")]
    public static partial void ShuttingDown(ILogger logger, int sessions, TimeSpan timeout);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "Shutdown timeout reached: closing {Sessions} busy sessions")]
    public static partial void ShutdownForced(ILogger logger, int sessions);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "All sessions closed")]
    public static partial void ShutdownComplete(ILogger logger);

    [LoggerMessage(EventId = 450, Level = LogLevel.Information, Message = "Plugin {Plugin} loaded ({Kind}) from {Path} in {Milliseconds:0} ms")]
    public static partial void PluginLoaded(ILogger logger, string plugin, PgProxy.Core.Plugins.PluginKind kind, string path, double milliseconds);

    [LoggerMessage(EventId = 451, Level = LogLevel.Information, Message = "Plugin {Plugin}: compiled, kept in the plugin cache as {CacheFile}")]
    public static partial void PluginCached(ILogger logger, string plugin, string cacheFile);

    [LoggerMessage(EventId = 452, Level = LogLevel.Information, Message = "Plugin {Plugin}: unchanged sources, loaded from the plugin cache {CacheFile} without compiling")]
    public static partial void PluginFromCache(ILogger logger, string plugin, string cacheFile);

    [LoggerMessage(EventId = 453, Level = LogLevel.Warning, Message = "Plugin {Plugin}: the plugin cache {CacheDirectory} cannot be written ({Reason}); compiled in memory, and compiled again at the next start (PGPROXY_PLUGIN_CACHE names another folder)")]
    public static partial void PluginCacheUnwritable(ILogger logger, string plugin, string cacheDirectory, string reason);

    [LoggerMessage(EventId = 500, Level = LogLevel.Debug, Message = "Session {SessionId}: client {Client} TLS handshake done ({Protocol}, {How})")]
    public static partial void ClientTlsEstablished(ILogger logger, long sessionId, string client, System.Security.Authentication.SslProtocols protocol, string how);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Session {SessionId}: client {Client} TLS handshake failed: {Reason}")]
    public static partial void ClientTlsFailed(ILogger logger, long sessionId, string client, string reason);

    [LoggerMessage(EventId = 502, Level = LogLevel.Debug, Message = "Session {SessionId}: upstream {Upstream} connection is {Encryption}")]
    public static partial void UpstreamEncryption(ILogger logger, long sessionId, string upstream, string encryption);

    [LoggerMessage(EventId = 503, Level = LogLevel.Debug, Message = "Session {SessionId}: SCRAM for user {User} ended at the proxy with a verifier from {Source}")]
    public static partial void ScramTerminated(ILogger logger, long sessionId, string user, string source);

    [LoggerMessage(EventId = 504, Level = LogLevel.Warning, Message = "Session {SessionId}: SCRAM for user {User} refused at the proxy: {Reason}")]
    public static partial void ScramRefused(ILogger logger, long sessionId, string user, string reason);

    [LoggerMessage(EventId = 505, Level = LogLevel.Information, Message = "Instance {Instance}: certificates and verifiers reloaded")]
    public static partial void SecurityReloaded(ILogger logger, string instance);

    [LoggerMessage(EventId = 506, Level = LogLevel.Warning, Message = "Instance {Instance}: SCRAM of a client that offers channel binding is relayed over a plain-text connection to {Upstream}, opened again for it (redirect.tls.mode prefer, no auth section); set auth.auth-file or auth.auth-user to keep these logins on TLS. Logged once per instance")]
    public static partial void PlainTextFallback(ILogger logger, string instance, string upstream);

    [LoggerMessage(EventId = 507, Level = LogLevel.Debug, Message = "Session {SessionId}: SCRAM for user {User} relayed over a plain-text upstream connection (redirect.tls.mode prefer, no auth section)")]
    public static partial void PlainTextFallbackUsed(ILogger logger, long sessionId, string user);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "{Pool}: opened a server connection to {Upstream}")]
    public static partial void PoolServerOpened(ILogger logger, string pool, string upstream);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Session {SessionId}: login from {Client} as user {User} refused by PgProxy: {Reason}")]
    public static partial void PooledLoginRefused(ILogger logger, long sessionId, string client, string user, string reason);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Session {SessionId}: the reset query ({ResetQuery}) failed, so the server connection is closed instead of pooled: {Reason}")]
    public static partial void PoolResetFailed(ILogger logger, long sessionId, string resetQuery, string reason);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "Session {SessionId}: the settings it changed could not be read back, so its server connection is closed instead of pooled: {Reason}")]
    public static partial void PoolSettingsUnread(ILogger logger, long sessionId, string reason);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Information, Message = "Database {Database}: opened the server connection that listens for the clients of transaction pooling")]
    public static partial void NotificationListenerOpened(ILogger logger, string database);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "Database {Database}: the connection that listens for the clients of transaction pooling was lost ({Reason}); opening it again, notifications sent meanwhile are not received")]
    public static partial void NotificationListenerLost(ILogger logger, string database, string reason);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Warning, Message = "Session {SessionId}: more than {Limit} notifications wait for the client to read them; newer ones are dropped")]
    public static partial void NotificationsDropped(ILogger logger, long sessionId, int limit);
}

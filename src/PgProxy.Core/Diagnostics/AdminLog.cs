using System.Net;
using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Diagnostics;

/// <summary>The admin console's log messages (general log); event ids 700–749.</summary>
internal static partial class AdminLog
{
    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Admin console listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, EndPoint endpoint);

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "Admin console stopped listening")]
    public static partial void StoppedListening(ILogger logger);

    [LoggerMessage(EventId = 702, Level = LogLevel.Information, Message = "Session {SessionId}: console session opened: client {Client}, user {User}")]
    public static partial void SessionOpened(ILogger logger, long sessionId, string client, string user);

    [LoggerMessage(EventId = 703, Level = LogLevel.Information, Message = "Session {SessionId}: console session closed: client {Client}, user {User}, duration {DurationSeconds:0.000} s ({Reason})")]
    public static partial void SessionClosed(ILogger logger, long sessionId, string client, string user, double durationSeconds, string reason);

    [LoggerMessage(EventId = 704, Level = LogLevel.Warning, Message = "Session {SessionId}: console login of user {User} from {Client} refused: {Reason}")]
    public static partial void LoginRefused(ILogger logger, long sessionId, string client, string user, string reason);

    [LoggerMessage(EventId = 705, Level = LogLevel.Information, Message = "Session {SessionId}: console user {User} ran {Command}")]
    public static partial void CommandRun(ILogger logger, long sessionId, string user, string command);

    [LoggerMessage(EventId = 706, Level = LogLevel.Debug, Message = "Session {SessionId}: console user {User} ran {Command}")]
    public static partial void QueryRun(ILogger logger, long sessionId, string user, string command);

    [LoggerMessage(EventId = 707, Level = LogLevel.Information, Message = "Session {SessionId}: killed from the admin console")]
    public static partial void SessionKilled(ILogger logger, long sessionId);

    [LoggerMessage(EventId = 708, Level = LogLevel.Information, Message = "Shutdown requested from the admin console ({Mode})")]
    public static partial void ShutdownRequested(ILogger logger, string mode);

    [LoggerMessage(EventId = 709, Level = LogLevel.Error, Message = "The shutdown requested from the admin console failed")]
    public static partial void ShutdownFailed(ILogger logger, Exception exception);
}

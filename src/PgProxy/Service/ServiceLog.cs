using Microsoft.Extensions.Logging;

namespace PgProxy.Host.Service;

/// <summary>Log messages of the service integration (systemd); event ids 40–49 of the host's 1–99.</summary>
internal static partial class ServiceLog
{
    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Service manager notified through {NotifySocket} (NOTIFY_SOCKET)")]
    public static partial void Notifying(ILogger logger, string notifySocket);

    [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "Watchdog: telling the service manager every {Seconds} s (half of WATCHDOG_USEC)")]
    public static partial void WatchdogStarted(ILogger logger, double seconds);

    [LoggerMessage(EventId = 42, Level = LogLevel.Warning, Message = "Cannot send {Message} to the service manager at {NotifySocket}: {Reason}")]
    public static partial void NotifyFailed(ILogger logger, string message, string notifySocket, string reason);
}

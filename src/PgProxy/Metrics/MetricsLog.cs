using Microsoft.Extensions.Logging;

namespace PgProxy.Host.Metrics;

/// <summary>The metrics endpoint's log messages; event ids 20–29 of the host's range.</summary>
internal static partial class MetricsLog
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Metrics endpoint listening on {Url}")]
    public static partial void Listening(ILogger logger, string url);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Metrics endpoint stopped listening on {Url}")]
    public static partial void Stopped(ILogger logger, string url);

    [LoggerMessage(EventId = 22, Level = LogLevel.Error, Message = "No metrics endpoint until a reload can start one: {Reason}")]
    public static partial void ListenFailed(ILogger logger, string reason);
}

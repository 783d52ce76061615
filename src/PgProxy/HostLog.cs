using Microsoft.Extensions.Logging;

namespace PgProxy.Host;

/// <summary>The host's log messages; event ids 1–99 belong to the host.</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "PgProxy {Version} running {Instances} instance(s)")]
    public static partial void Started(ILogger logger, int instances, string version);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "Relaying on {Loops} event loop(s) (0: .NET's socket engine; PGPROXY_EVENT_LOOPS sets it)")]
    public static partial void EventLoops(ILogger logger, int loops);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "{Signal} received: stopping")]
    public static partial void StopSignal(ILogger logger, System.Runtime.InteropServices.PosixSignal signal);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "PgProxy stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 4, Level = LogLevel.Critical, Message = "Cannot start: {Reason}")]
    public static partial void StartFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 12, Level = LogLevel.Information, Message = "The configuration file changed (watch-config): reloading {ConfigFile}")]
    public static partial void FileChanged(ILogger logger, string configFile);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "SIGHUP received: reloading {ConfigFile}")]
    public static partial void Reloading(ILogger logger, string configFile);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "PgProxy {Version} starting {Instances} instance(s) from {ConfigFile}")]
    public static partial void Starting(ILogger logger, string version, int instances, string configFile);

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "{Signal} received during start-up: stopped before any instance started")]
    public static partial void StoppedDuringStartup(ILogger logger, System.Runtime.InteropServices.PosixSignal signal);

    // 6-8 (reload failed, needs a restart, reloaded) are logged by the engine's configuration owner now, for every reload.
}

/// <summary>The version the command reports.</summary>
internal static class ThisAssembly
{
    public static string Version { get; } =
        typeof(ThisAssembly).Assembly.GetName().Version?.ToString(3) ?? "unknown";
}

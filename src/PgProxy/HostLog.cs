using Microsoft.Extensions.Logging;

namespace PgProxy.Host;

/// <summary>The host's log messages; event ids 1–99 belong to the host, and 1700–1719 to the hand-over (--takeover).</summary>
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

    [LoggerMessage(EventId = 1700, Level = LogLevel.Information, Message = "Hand-over: control socket {Path} (pgproxy --takeover with this configuration takes this process's listening sockets)")]
    public static partial void ControlSocketListening(ILogger logger, string path);

    [LoggerMessage(EventId = 1701, Level = LogLevel.Warning, Message = "Hand-over: cannot listen on the control socket {Path}: {Reason}; pgproxy --takeover cannot take over from this process")]
    public static partial void ControlSocketFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 1702, Level = LogLevel.Information, Message = "Hand-over: sent {Sockets} listening socket(s) to process {Pid}; accepting until it accepts on them")]
    public static partial void HandingOver(ILogger logger, int sockets, int pid);

    [LoggerMessage(EventId = 1703, Level = LogLevel.Information, Message = "Hand-over: process {Pid} accepts on the listening sockets; this process stopped accepting and stops as on SIGTERM")]
    public static partial void HandedOver(ILogger logger, int pid);

    [LoggerMessage(EventId = 1704, Level = LogLevel.Warning, Message = "Hand-over failed: {Reason}")]
    public static partial void TakeoverFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 1705, Level = LogLevel.Warning, Message = "Hand-over refused to process {Pid}: it runs as uid {Uid}, not as this process's user")]
    public static partial void TakeoverRefused(ILogger logger, int pid, uint uid);

    [LoggerMessage(EventId = 1706, Level = LogLevel.Information, Message = "Taking over from process {Pid} through {Path}")]
    public static partial void TakingOver(ILogger logger, int pid, string path);

    [LoggerMessage(EventId = 1707, Level = LogLevel.Information, Message = "Took {Sockets} listening socket(s) from process {Pid}")]
    public static partial void TookSockets(ILogger logger, int sockets, int pid);

    [LoggerMessage(EventId = 1708, Level = LogLevel.Information, Message = "Hand-over complete: the previous process stopped accepting and drains its sessions")]
    public static partial void TakeoverReleased(ILogger logger);

    [LoggerMessage(EventId = 1709, Level = LogLevel.Warning, Message = "Hand-over: the previous process did not confirm it stopped accepting (it went away?); serving on")]
    public static partial void TakeoverNoRelease(ILogger logger);

    [LoggerMessage(EventId = 1710, Level = LogLevel.Information, Message = "SIGUSR2 received: started process {Pid} with --takeover to take this process's listening sockets")]
    public static partial void SuccessorStarted(ILogger logger, int pid);

    // 6-8 (reload failed, needs a restart, reloaded) are logged by the engine's configuration owner now, for every reload.
}

/// <summary>The version the command reports.</summary>
internal static class ThisAssembly
{
    public static string Version { get; } =
        typeof(ThisAssembly).Assembly.GetName().Version?.ToString(3) ?? "unknown";
}

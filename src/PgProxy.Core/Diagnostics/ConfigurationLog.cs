using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Diagnostics;

/// <summary>The configuration owner's log messages: loading, reloading and swapping snapshots; event ids 600–649.</summary>
internal static partial class ConfigurationLog
{
    [LoggerMessage(EventId = 600, Level = LogLevel.Error, Message = "Reload failed; the running configuration stays:\n{Problems}")]
    public static partial void ReloadFailed(ILogger logger, string problems);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Reload: {Change}")]
    public static partial void ReloadChange(ILogger logger, string change);

    [LoggerMessage(EventId = 602, Level = LogLevel.Information, Message = "Configuration reloaded (generation {Generation}): {Instances} instance(s), {Plugins} plugin(s); new sessions use it, open sessions keep the configuration they started with except rules, which apply from their next statement")]
    public static partial void Reloaded(ILogger logger, long generation, int instances, int plugins);

    [LoggerMessage(EventId = 603, Level = LogLevel.Information, Message = "Reload: {Setting} is read at start only; a change to it takes a restart")]
    public static partial void ReloadNeedsRestart(ILogger logger, string setting);
}

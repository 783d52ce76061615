using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using Serilog;
using Serilog.Events;
using Serilog.Extensions.Logging;
using Serilog.Filters;

namespace PgProxy.Host.Logging;

/// <summary>
/// Builds the two logs of the configuration: the general log (console, and <c>general-log</c> when set) and the
/// intercept log (<c>intercept-log</c>), each a rolling file so it cannot fill the disk. Every sink writes from a
/// background queue, so logging never blocks a session.
/// </summary>
internal static class LoggingSetup
{
    /// <summary>The logger category that writes to the intercept log and nowhere else.</summary>
    public const string InterceptCategory = "PgProxy.Intercept";

    private const string FileTemplate = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}";
    private const string ConsoleTemplate = "{Timestamp:HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}";

    public static ILoggerFactory Create(ProxySettings settings)
    {
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(ToSerilog(settings.LogLevel))
            .WriteTo.Logger(general =>
            {
                general.Filter.ByExcluding(Matching.FromSource(InterceptCategory))
                    .WriteTo.Async(console => console.Console(outputTemplate: ConsoleTemplate, standardErrorFromLevel: LogEventLevel.Verbose, formatProvider: System.Globalization.CultureInfo.InvariantCulture));
                if (settings.GeneralLog is { } generalLog)
                {
                    RollingFile(general, generalLog, settings);
                }
            });
        if (settings.InterceptLog is { } interceptLog)
        {
            configuration.WriteTo.Logger(intercept =>
                RollingFile(intercept.Filter.ByIncludingOnly(Matching.FromSource(InterceptCategory)), interceptLog, settings));
        }

        if (settings.LogLevel == LogLevel.None)
        {
            configuration.Filter.ByExcluding(_ => true);
        }

        return new SerilogLoggerFactory(configuration.CreateLogger(), dispose: true);
    }

    private static void RollingFile(LoggerConfiguration logger, string path, ProxySettings settings)
    {
        string? directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        // Async: sessions log from the threads that forward their bytes, which must never wait on a disk.
        logger.WriteTo.Async(file => file.File(
            path,
            outputTemplate: FileTemplate,
            formatProvider: System.Globalization.CultureInfo.InvariantCulture,
            fileSizeLimitBytes: settings.LogMaxSize,
            rollOnFileSizeLimit: true,
            rollingInterval: settings.LogRotation == LogRotation.Daily ? RollingInterval.Day : RollingInterval.Infinite,
            retainedFileCountLimit: settings.LogRetainedFiles,
            flushToDiskInterval: TimeSpan.FromSeconds(1)));
    }

    private static LogEventLevel ToSerilog(LogLevel level) => level switch
    {
        LogLevel.Trace => LogEventLevel.Verbose,
        LogLevel.Debug => LogEventLevel.Debug,
        LogLevel.Information => LogEventLevel.Information,
        LogLevel.Warning => LogEventLevel.Warning,
        LogLevel.Error => LogEventLevel.Error,
        _ => LogEventLevel.Fatal,
    };
}

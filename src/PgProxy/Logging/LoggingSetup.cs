using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Hosting;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Extensions.Logging;
using Serilog.Filters;

namespace PgProxy.Host.Logging;

/// <summary>
/// The two logs of the configuration: the general log (console, and <c>general-log</c> when set) and the intercept
/// log (<c>intercept-log</c>), each a rolling file so it cannot fill the disk. Every sink writes from a background
/// queue, so logging never blocks a session. A reload changes the level at once (a level switch every logger reads)
/// and re-points the files (a sink that forwards to the file loggers of the running configuration).
/// </summary>
internal sealed class LoggingSetup : IReloadableSettings, IDisposable
{
    /// <summary>The logger category that writes to the intercept log and nowhere else.</summary>
    public const string InterceptCategory = "PgProxy.Intercept";

    /// <summary>The logger category of query-log lines (Core's QueryLog): written to the query-log file and nowhere else, whatever the log level.</summary>
    public const string QueryLogCategory = "PgProxy.QueryLog";

    private const string QueryLogTemplate = "{Message:l}{NewLine}";

    private const string FileTemplate = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}";
    private const string ConsoleTemplate = "{Timestamp:HH:mm:ss.fff} [{Level:u3}] {Message:lj}{NewLine}{Exception}";

    private readonly LoggingLevelSwitch level = new();
    private readonly SwitchingSink files = new();
    private readonly SerilogLoggerFactory loggerFactory;
    private ProxySettings applied;
    private string? appliedQueryLog;
    private volatile bool silent;

    private LoggingSetup(ProxySettings settings, string? queryLog)
    {
        applied = settings;
        appliedQueryLog = queryLog;
        SetLevel(settings.LogLevel);
        files.Replace(() => FileLogger(settings, queryLog), closeFirst: false);
        Logger logger = new LoggerConfiguration()
            .MinimumLevel.ControlledBy(level)
            .MinimumLevel.Override(QueryLogCategory, LogEventLevel.Verbose)
            .Filter.ByExcluding(logEvent => silent && !Matching.FromSource(QueryLogCategory)(logEvent))
            .WriteTo.Logger(general => general.Filter.ByExcluding(Matching.FromSource(InterceptCategory)).Filter.ByExcluding(Matching.FromSource(QueryLogCategory))
                .WriteTo.Async(console => console.Console(outputTemplate: ConsoleTemplate, standardErrorFromLevel: LogEventLevel.Verbose, formatProvider: System.Globalization.CultureInfo.InvariantCulture)))
            .WriteTo.Sink(files)
            .CreateLogger();
        loggerFactory = new SerilogLoggerFactory(logger, dispose: true);
    }

    public ILoggerFactory LoggerFactory => loggerFactory;

    public static LoggingSetup Create(ProxySettings settings, string? queryLog = null) => new(settings, queryLog);

    /// <summary>A log file whose directory cannot be created would stop logging there: the reload is refused instead.</summary>
    public IReadOnlyList<string> Check(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var problems = new List<string>();
        foreach ((string key, string? path) in new[] { ("settings.general-log", config.Settings.GeneralLog), ("settings.intercept-log", config.Settings.InterceptLog), ("query-log.file", config.QueryLog?.File) })
        {
            if (path is null || Path.GetDirectoryName(path) is not { Length: > 0 } directory)
            {
                continue;
            }

            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add($"{key} {path}: cannot create its directory: {e.Message}");
            }
        }

        return problems;
    }

    public ValueTask ApplyAsync(ProxyConfig config, CancellationToken cancellationToken)
    {
        Apply(config);
        return ValueTask.CompletedTask;
    }

    private void Apply(ProxyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        ProxySettings next = config.Settings;
        string? nextQueryLog = config.QueryLog?.File;
        SetLevel(next.LogLevel);
        if (SameFiles(applied, next) && appliedQueryLog == nextQueryLog)
        {
            return;
        }

        // A file both configurations write is closed before it is opened again: one file, one writer.
        bool shared = Paths(applied, appliedQueryLog).Intersect(Paths(next, nextQueryLog), StringComparer.Ordinal).Any();
        files.Replace(() => FileLogger(next, nextQueryLog), closeFirst: shared);
        applied = next;
        appliedQueryLog = nextQueryLog;
    }

    public void Dispose()
    {
        // Disposing the factory flushes and closes the console and, through the switching sink, the files.
        loggerFactory.Dispose();
        files.Dispose();
    }

    private static Logger? FileLogger(ProxySettings settings, string? queryLog)
    {
        if (settings.GeneralLog is null && settings.InterceptLog is null && queryLog is null)
        {
            return null;
        }

        // Verbose: the level switch of the outer logger has filtered already.
        var configuration = new LoggerConfiguration().MinimumLevel.Verbose();
        if (settings.GeneralLog is { } generalLog)
        {
            configuration.WriteTo.Logger(general => RollingFile(
                general.Filter.ByExcluding(Matching.FromSource(InterceptCategory)).Filter.ByExcluding(Matching.FromSource(QueryLogCategory)), generalLog, settings));
        }

        if (settings.InterceptLog is { } interceptLog)
        {
            configuration.WriteTo.Logger(intercept => RollingFile(intercept.Filter.ByIncludingOnly(Matching.FromSource(InterceptCategory)), interceptLog, settings));
        }

        if (queryLog is not null)
        {
            // Lines come pre-formatted (JSON or text) from one background writer in Core, which keeps the bounded
            // queue and counts what it drops; this only rolls and flushes the file.
            configuration.WriteTo.Logger(lines => RollingFile(lines.Filter.ByIncludingOnly(Matching.FromSource(QueryLogCategory)), queryLog, settings, QueryLogTemplate));
        }

        return configuration.CreateLogger();
    }

    private static void RollingFile(LoggerConfiguration logger, string path, ProxySettings settings, string template = FileTemplate)
    {
        string? directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        // Async: sessions log from the threads that forward their bytes, which must never wait on a disk.
        logger.WriteTo.Async(file => file.File(
            path,
            outputTemplate: template,
            formatProvider: System.Globalization.CultureInfo.InvariantCulture,
            fileSizeLimitBytes: settings.LogMaxSize,
            rollOnFileSizeLimit: true,
            rollingInterval: settings.LogRotation == LogRotation.Daily ? RollingInterval.Day : RollingInterval.Infinite,
            retainedFileCountLimit: settings.LogRetainedFiles,
            flushToDiskInterval: TimeSpan.FromSeconds(1)));
    }

    private static bool SameFiles(ProxySettings a, ProxySettings b) =>
        a.GeneralLog == b.GeneralLog && a.InterceptLog == b.InterceptLog && a.LogRotation == b.LogRotation
        && a.LogMaxSize == b.LogMaxSize && a.LogRetainedFiles == b.LogRetainedFiles;

    private static IEnumerable<string> Paths(ProxySettings settings, string? queryLog) =>
        new[] { settings.GeneralLog, settings.InterceptLog, queryLog }.OfType<string>();

    private static LogEventLevel ToSerilog(LogLevel level) => level switch
    {
        LogLevel.Trace => LogEventLevel.Verbose,
        LogLevel.Debug => LogEventLevel.Debug,
        LogLevel.Information => LogEventLevel.Information,
        LogLevel.Warning => LogEventLevel.Warning,
        LogLevel.Error => LogEventLevel.Error,
        _ => LogEventLevel.Fatal,
    };

    private void SetLevel(LogLevel logLevel)
    {
        level.MinimumLevel = ToSerilog(logLevel);
        silent = logLevel == LogLevel.None;
    }

    /// <summary>Forwards each event to the file loggers of the running configuration; a reload swaps them.</summary>
    private sealed class SwitchingSink : ILogEventSink, IDisposable
    {
        private Logger? inner;

        public void Emit(LogEvent logEvent) => Volatile.Read(ref inner)?.Write(logEvent);

        /// <summary>
        /// Swaps in the loggers <paramref name="build"/> makes and closes the old ones, flushing what they queued.
        /// With <paramref name="closeFirst"/> the old ones close before the new ones open; lines in between go to the
        /// console only.
        /// </summary>
        public void Replace(Func<Logger?> build, bool closeFirst)
        {
            if (closeFirst)
            {
                Interlocked.Exchange(ref inner, null)?.Dispose();
                Volatile.Write(ref inner, build());
            }
            else
            {
                Interlocked.Exchange(ref inner, build())?.Dispose();
            }
        }

        public void Dispose() => Interlocked.Exchange(ref inner, null)?.Dispose();
    }
}

using Microsoft.Extensions.Logging;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Interception;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;
using PgProxy.Sql;

namespace PgProxy.Core.Tests.Diagnostics;

/// <summary>Every line that carries SQL, in the intercept log and the query log, has its passwords taken out, at every level.</summary>
public sealed partial class PasswordRedactionInLogsTests
{
    private const string Secret = "hunter2-secret";
    private const string Statement = $"ALTER ROLE app PASSWORD '{Secret}'";
    private const string Redacted = "ALTER ROLE app PASSWORD " + PasswordRedaction.Marker;

    [Fact]
    public void Every_intercept_log_message_with_sql_writes_it_redacted()
    {
        var logger = new LinesLogger();

        InterceptLog.Rewritten(logger, 1, "Query", "p.f", Statement, Statement + " VALID UNTIL 'infinity'");
        InterceptLog.Refused(logger, 1, "Query", "p.f", "42501", "no", Statement);
        InterceptLog.Unchanged(logger, 1, "Query", "p.f", Statement);
        InterceptLog.MetadataQuery(logger, 1, "p.f", Statement, 0);
        InterceptLog.RuleLogged(logger, 1, "Query", "audit", Statement);
        InterceptLog.RuleLogOnly(logger, 1, "Query", "rewrite", "rewrite", Statement, Statement);
        InterceptLog.RuleTimedOut(logger, 1, "slow", "50 ms", "Query", Statement);

        Assert.Equal(7, logger.Lines.Count);
        Assert.All(logger.Lines, line =>
        {
            Assert.DoesNotContain(Secret, line, StringComparison.Ordinal);
            Assert.Contains(Redacted, line, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void What_a_plugin_writes_to_the_intercept_log_is_redacted_and_other_lines_keep_their_values()
    {
        var logger = new LinesLogger();
        ISessionContext context = new SessionContext(7, "proxy", null, [new("user", "alice")], new ServerProtocolState(), logger);

        PluginSaw(context.Logger, Statement);
        PluginSaw(context.Logger, "SELECT 'open'");

        Assert.Equal(["plugin saw " + Redacted, "plugin saw SELECT 'open'"], logger.Lines);
        Assert.IsNotType<string>(logger.States[1]); // a line without the word is passed on as it came, values and all
    }

    [Fact]
    public void A_disabled_level_writes_nothing()
    {
        var logger = new LinesLogger { Minimum = LogLevel.Information };

        InterceptLog.Unchanged(logger, 1, "Query", "p.f", Statement);

        Assert.Empty(logger.Lines);
    }

    [Theory]
    [InlineData(QueryLogFormat.Json)]
    [InlineData(QueryLogFormat.Text)]
    public async Task The_query_log_with_parameters_writes_the_text_redacted(QueryLogFormat format)
    {
        var logger = new LinesLogger();
        var log = new QueryLog(new OneLoggerFactory(logger));
        var shape = new QueryShape(1, "0000000000000001", "ALTER ROLE app PASSWORD $1", Statement);

        log.Write(new QueryLogRecord(
            DateTimeOffset.UnixEpoch, 1, "proxy", "u", "db", null, "127.0.0.1:1", shape, 10, 0, null, null, null,
            new QueryLogConfig { File = "/dev/null", Parameters = true, Format = format })
        {
            Text = Statement,
        });
        await log.DisposeAsync();

        string line = Assert.Single(logger.Lines);
        Assert.DoesNotContain(Secret, line, StringComparison.Ordinal);
        Assert.Contains("[password redacted]", line, StringComparison.Ordinal);
    }

    /// <summary>A line as a plugin writes it, with the query among its values.</summary>
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "plugin saw {Query}")]
    private static partial void PluginSaw(ILogger logger, string query);

    private sealed class LinesLogger : ILogger
    {
        public LogLevel Minimum { get; init; } = LogLevel.Trace;

        public List<string> Lines { get; } = [];

        public List<object?> States { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= Minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (Lines)
                {
                    Lines.Add(formatter(state, exception));
                    States.Add(state);
                }
            }
        }
    }

    private sealed class OneLoggerFactory(ILogger logger) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => categoryName == QueryLog.Category ? logger : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }
}

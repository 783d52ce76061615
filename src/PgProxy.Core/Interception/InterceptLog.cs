using Microsoft.Extensions.Logging;
using PgProxy.Sql;

namespace PgProxy.Core.Interception;

/// <summary>
/// Messages of the intercept log (category PgProxy.Intercept); event ids 500–599. Every message that carries SQL takes
/// its passwords out first (<see cref="PasswordRedaction"/>), at every level: the original wrote
/// <c>ALTER ROLE app PASSWORD 'secret'</c> in clear. Only enabled lines pay for it, and only texts that say password.
/// </summary>
internal static partial class InterceptLog
{
    public const string Category = "PgProxy.Intercept";

    public static void Rewritten(ILogger logger, long sessionId, string kind, string interceptor, string before, string after)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string shownBefore = PasswordRedaction.Redact(before);
            string shownAfter = PasswordRedaction.Redact(after);
            RewrittenLine(logger, sessionId, kind, interceptor, shownBefore, shownAfter);
        }
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} rewritten by {Interceptor}\n  before: {Before}\n  after:  {After}")]
    private static partial void RewrittenLine(ILogger logger, long sessionId, string kind, string interceptor, string before, string after);

    public static void Refused(ILogger logger, long sessionId, string kind, string interceptor, string sqlState, string reason, string query)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string shownQuery = PasswordRedaction.Redact(query);
            RefusedLine(logger, sessionId, kind, interceptor, sqlState, reason, shownQuery);
        }
    }

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} refused by {Interceptor} with {SqlState} {Reason}\n  query: {Query}")]
    private static partial void RefusedLine(ILogger logger, long sessionId, string kind, string interceptor, string sqlState, string reason, string query);

    public static void Unchanged(ILogger logger, long sessionId, string kind, string interceptor, string query)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            string shownQuery = PasswordRedaction.Redact(query);
            UnchangedLine(logger, sessionId, kind, interceptor, shownQuery);
        }
    }

    [LoggerMessage(EventId = 502, Level = LogLevel.Debug, Message = "Session {SessionId}: {Kind} passed by {Interceptor} unchanged: {Query}")]
    private static partial void UnchangedLine(ILogger logger, long sessionId, string kind, string interceptor, string query);

    [LoggerMessage(EventId = 503, Level = LogLevel.Error, Message = "Session {SessionId}: interceptor {Interceptor} failed; {Outcome}")]
    public static partial void Failed(ILogger logger, long sessionId, string interceptor, string outcome, Exception exception);

    [LoggerMessage(EventId = 504, Level = LogLevel.Information, Message = "Session {SessionId}: start-up changed by {Interceptor}: {Parameters}")]
    public static partial void StartupChanged(ILogger logger, long sessionId, string interceptor, string parameters);

    [LoggerMessage(EventId = 505, Level = LogLevel.Information, Message = "Session {SessionId}: start-up refused by {Interceptor} with {SqlState} {Reason}")]
    public static partial void StartupRefused(ILogger logger, long sessionId, string interceptor, string sqlState, string reason);

    public static void MetadataQuery(ILogger logger, long sessionId, string interceptor, string sql, int rows)
    {
        if (logger.IsEnabled(LogLevel.Debug))
        {
            string shownSql = PasswordRedaction.Redact(sql);
            MetadataQueryLine(logger, sessionId, interceptor, shownSql, rows);
        }
    }

    [LoggerMessage(EventId = 506, Level = LogLevel.Debug, Message = "Session {SessionId}: metadata query for {Interceptor}: {Sql} ({Rows} rows)")]
    private static partial void MetadataQueryLine(ILogger logger, long sessionId, string interceptor, string sql, int rows);

    [LoggerMessage(EventId = 507, Level = LogLevel.Warning, Message = "Session {SessionId}: {Kind} left untouched: its text cannot be decoded in client_encoding {Encoding}")]
    public static partial void Undecodable(ILogger logger, long sessionId, string kind, string encoding);

    [LoggerMessage(EventId = 508, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} changed by the response interceptors")]
    public static partial void ResponseChanged(ILogger logger, long sessionId, PgProxy.Abstractions.ResponseKinds kind);

    [LoggerMessage(EventId = 509, Level = LogLevel.Debug, Message = "Session {SessionId}: a row changed by the response interceptors")]
    public static partial void RowChanged(ILogger logger, long sessionId);

    [LoggerMessage(EventId = 510, Level = LogLevel.Debug, Message = "Session {SessionId}: a row withheld by {Interceptor} with {SqlState} {Reason}")]
    public static partial void RowWithheld(ILogger logger, long sessionId, string interceptor, string sqlState, string reason);

    [LoggerMessage(EventId = 511, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} refused by {Interceptor} with {SqlState} {Reason}; it goes on without the remaining interceptors")]
    public static partial void ResponseRefused(ILogger logger, long sessionId, PgProxy.Abstractions.ResponseKinds kind, string interceptor, string sqlState, string reason);

    public static void RuleLogged(ILogger logger, long sessionId, string kind, string rule, string query)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string shownQuery = PasswordRedaction.Redact(query);
            RuleLoggedLine(logger, sessionId, kind, rule, shownQuery);
        }
    }

    [LoggerMessage(EventId = 512, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} matched rule {Rule}: {Query}")]
    private static partial void RuleLoggedLine(ILogger logger, long sessionId, string kind, string rule, string query);

    public static void RuleLogOnly(ILogger logger, long sessionId, string kind, string rule, string action, string before, string after)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string shownBefore = PasswordRedaction.Redact(before);
            string shownAfter = PasswordRedaction.Redact(after);
            RuleLogOnlyLine(logger, sessionId, kind, rule, action, shownBefore, shownAfter);
        }
    }

    [LoggerMessage(EventId = 513, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} matched log-only rule {Rule}, which would {Action}; it goes on unchanged\n  before: {Before}\n  after:  {After}")]
    private static partial void RuleLogOnlyLine(ILogger logger, long sessionId, string kind, string rule, string action, string before, string after);

    public static void RuleTimedOut(ILogger logger, long sessionId, string rule, string timeout, string kind, string query)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            string shownQuery = PasswordRedaction.Redact(query);
            RuleTimedOutLine(logger, sessionId, rule, timeout, kind, shownQuery);
        }
    }

    [LoggerMessage(EventId = 514, Level = LogLevel.Warning, Message = "Session {SessionId}: rule {Rule} skipped: a regular expression of it ran past rule-timeout ({Timeout}) on {Kind}: {Query}")]
    private static partial void RuleTimedOutLine(ILogger logger, long sessionId, string rule, string timeout, string kind, string query);

    [LoggerMessage(EventId = 515, Level = LogLevel.Information, Message = "Instance {Instance}, rule {Rule} ({Mode}): matched {Matched}, applied {Applied}, log-only hits {LogOnlyHits}, refusals {Refusals}, regex timeouts {RegexTimeouts}")]
    public static partial void RuleCounters(ILogger logger, string instance, string rule, string mode, long matched, long applied, long logOnlyHits, long refusals, long regexTimeouts);

    [LoggerMessage(EventId = 516, Level = LogLevel.Information, Message = "Instance {Instance}, mask {Mask} ({Mode}): matched {Matched}, applied {Applied}, log-only hits {LogOnlyHits}, refusals {Refusals}, regex timeouts {RegexTimeouts}")]
    public static partial void MaskCounters(ILogger logger, string instance, string mask, string mode, long matched, long applied, long logOnlyHits, long refusals, long regexTimeouts);

    [LoggerMessage(EventId = 517, Level = LogLevel.Debug, Message = "Session {SessionId}: masks read the catalog: {Relations} relations, {Masked} with masked columns")]
    public static partial void MaskCatalogRead(ILogger logger, long sessionId, int relations, int masked);

    [LoggerMessage(EventId = 518, Level = LogLevel.Error, Message = "Configuration error: mask {Mask} (line {Line}): its function {Function} cannot keep the type {Type} of {Column} in binary format; results holding that column are refused")]
    public static partial void MaskTypeMismatch(ILogger logger, string mask, int line, string function, string type, string column);

    [LoggerMessage(EventId = 519, Level = LogLevel.Information, Message = "Session {SessionId}: {Kind} matched log-only mask {Mask}, which would refuse it: {Reason}; it goes on unchanged\n  query: {Query}")]
    public static partial void MaskLogOnlyRefusal(ILogger logger, long sessionId, string kind, string mask, string reason, string query);

    [LoggerMessage(EventId = 520, Level = LogLevel.Debug, Message = "Session {SessionId}: mask {Mask} masks column {Column} of a result")]
    public static partial void MaskApplied(ILogger logger, long sessionId, string mask, string column);

    [LoggerMessage(EventId = 521, Level = LogLevel.Information, Message = "Session {SessionId}: log-only mask {Mask} would mask column {Column} of a result; its values go on unchanged")]
    public static partial void MaskLogOnly(ILogger logger, long sessionId, string mask, string column);

    [LoggerMessage(EventId = 522, Level = LogLevel.Information, Message = "Session {SessionId}: a result refused by {Mask} with 42501: {Reason}")]
    public static partial void MaskResultRefused(ILogger logger, long sessionId, string mask, string reason);

    [LoggerMessage(EventId = 523, Level = LogLevel.Information, Message = "Session {SessionId}: log-only mask {Mask} would refuse a result: {Reason}; its rows go on unchanged")]
    public static partial void MaskLogOnlyResultRefusal(ILogger logger, long sessionId, string mask, string reason);

    [LoggerMessage(EventId = 524, Level = LogLevel.Warning, Message = "Session {SessionId}: masks could not read the catalog: {Reason}")]
    public static partial void MaskCatalogFailed(ILogger logger, long sessionId, string reason);

    [LoggerMessage(EventId = 1600, Level = LogLevel.Warning, Message = "Session {SessionId}: a {Kind} of {Bytes} bytes is larger than limits.max-intercepted-size ({Limit} bytes): relayed as it came, without the query interceptors")]
    public static partial void OversizedPassed(ILogger logger, long sessionId, string kind, long bytes, long limit);

    [LoggerMessage(EventId = 1601, Level = LogLevel.Warning, Message = "Session {SessionId}: a {Kind} of {Bytes} bytes is larger than limits.max-intercepted-size ({Limit} bytes): refused with 54000 (a query interceptor has on-error: refuse)")]
    public static partial void OversizedRefused(ILogger logger, long sessionId, string kind, long bytes, long limit);
}

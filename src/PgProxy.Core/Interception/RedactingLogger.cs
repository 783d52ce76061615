using Microsoft.Extensions.Logging;
using PgProxy.Sql;

namespace PgProxy.Core.Interception;

/// <summary>
/// The intercept log as plugins get it (<see cref="PgProxy.Abstractions.ISessionContext.Logger"/>): a plugin that
/// writes the query it saw must not write a password either. A line that holds the word <c>password</c> is written as
/// its redacted text (losing its structured values, the price of not leaking them); any other line goes on as it came.
/// Exception messages are the plugin's own and go on unchanged.
/// </summary>
internal sealed class RedactingLogger(ILogger inner) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => inner.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        if (!inner.IsEnabled(logLevel))
        {
            return;
        }

        string message = formatter(state, exception);
        if (!PasswordRedaction.MayCarryPassword(message))
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
            return;
        }

        inner.Log(logLevel, eventId, PasswordRedaction.Redact(message), exception, static (text, _) => text);
    }
}

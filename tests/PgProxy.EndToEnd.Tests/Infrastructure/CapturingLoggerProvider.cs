using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PgProxy.EndToEnd.Tests.Infrastructure;

/// <summary>Keeps every formatted log line, so tests can assert on what the proxy logged.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> lines = new();
    private readonly Changes changes = new();

    public IReadOnlyList<string> Lines => lines.ToArray();

    /// <summary>Returns once a line matching <paramref name="match"/> is logged; checked at each line, with a deadline.</summary>
    public Task WaitForLineAsync(Func<string, bool> match, TimeSpan deadline, string what) =>
        changes.WaitUntilAsync(() => lines.Any(match), deadline, what);

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(this);

    public void Dispose()
    {
    }

    private sealed class CapturingLogger(CapturingLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            owner.lines.Enqueue($"[{logLevel}] {formatter(state, exception)}{(exception is null ? string.Empty : " " + exception)}");
            owner.changes.Announce();
        }
    }
}

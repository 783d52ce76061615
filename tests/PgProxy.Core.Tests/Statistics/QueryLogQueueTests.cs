using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Core.Statistics;

namespace PgProxy.Core.Tests.Statistics;

/// <summary>The query log's queue: a slow writer never stalls a session, and what it drops is counted and said.</summary>
public sealed class QueryLogQueueTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_full_queue_drops_records_counts_them_and_logs_the_count()
    {
        using var provider = new BlockingProvider();
        var log = new QueryLog(provider);

        // The writer takes the first record and blocks on the (slow) file; the queue then fills.
        log.Write(Record());
        await provider.FirstLineEntered.Task.WaitAsync(Deadline);
        for (int i = 0; i < QueryLog.QueueCapacity + 5; i++)
        {
            log.Write(Record());
        }

        Assert.Equal(5, log.Dropped);
        provider.Release.Set();
        await log.DisposeAsync();
        Assert.Equal(QueryLog.QueueCapacity + 1, provider.Lines.SelectMany(text => text.Split('\n')).Count(line => line.StartsWith('{')));
        Assert.Contains(provider.Lines, line => line.Contains("dropped 5 lines", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Records_queued_together_are_written_as_one_event_of_one_json_line_each()
    {
        using var provider = new BlockingProvider();
        provider.Release.Set();
        var log = new QueryLog(provider);
        for (int i = 0; i < 3; i++)
        {
            log.Write(Record() with { SessionId = i });
        }

        await log.DisposeAsync();

        string[] lines = [.. provider.Lines.Where(text => text.StartsWith('{')).SelectMany(text => text.Split('\n'))];
        Assert.Equal([0L, 1L, 2L], lines.Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("session").GetInt64()));
        Assert.All(lines, line => Assert.EndsWith("}", line, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("SFATAL\0C57P01\0Mterminating\0\0", "57P01")]
    [InlineData("SERROR\0VERROR\0C22012\0Mdivision by zero\0\0", "22012")]
    [InlineData("SERROR\0Mno code\0\0", null)]
    public void The_sqlstate_is_read_from_the_error_fields(string fields, string? sqlState) =>
        Assert.Equal(sqlState, StatementTimer.SqlStateOf(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(fields))));

    private static QueryLogRecord Record() => new(
        DateTimeOffset.UnixEpoch, 1, "proxy", "u", "db", null, "127.0.0.1:1", new QueryShape(1, "0000000000000001", "SELECT $1", "SELECT 1"),
        10, 1, null, null, null, new QueryLogConfig { File = "/dev/null" });

    /// <summary>A logger factory whose every logger blocks (a slow disk) until released.</summary>
    private sealed class BlockingProvider : ILoggerFactory, ILogger
    {
        public TaskCompletionSource FirstLineEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ManualResetEventSlim Release { get; } = new();

        public List<string> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            FirstLineEntered.TrySetResult();
            Release.Wait(Deadline);
            lock (Lines)
            {
                Lines.Add(formatter(state, exception));
            }
        }

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose() => Release.Dispose();
    }
}

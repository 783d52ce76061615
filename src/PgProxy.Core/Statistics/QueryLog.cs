using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Configuration;
using PgProxy.Sql;

namespace PgProxy.Core.Statistics;

/// <summary>One executed statement, as the query log writes it.</summary>
internal sealed record QueryLogRecord(
    DateTimeOffset Time,
    long SessionId,
    string Instance,
    string User,
    string Database,
    string? ApplicationName,
    string? ClientAddress,
    QueryShape Shape,
    double Microseconds,
    long Rows,
    string? SqlState,
    string? ChangedBy,
    IReadOnlyList<string?>? Parameters,
    QueryLogConfig Settings)
{
    /// <summary>The text as the client sent it (with <c>parameters: true</c>); the whole message for a multi-statement Query.</summary>
    public string? Text { get; init; }
}

/// <summary>
/// The query log: one line per executed statement. Sessions hand records to a bounded queue and go on; one background
/// task formats them and writes them to the log category <see cref="Category"/>, which the host sends to the
/// <c>query-log</c> file (rolling like the other logs, flushed every second). A full queue drops the record and
/// counts it: the drops are logged once a second at most, never silently. Owned by the configuration owner, so a
/// reload loses nothing queued; each record carries the settings of its session's snapshot.
/// </summary>
/// <remarks>
/// The writer wakes at most every <see cref="BatchInterval"/> and writes what queued meanwhile as one log event of many
/// lines. Woken per record instead, it cost a thread-pool dispatch and a logging pipeline per statement: measured as
/// twice the proxy's CPU per pgbench transaction. A session that queues a record while the writer waits on its timer
/// wakes nobody.
/// </remarks>
internal sealed partial class QueryLog : IAsyncDisposable
{
    /// <summary>The logger category of query-log lines.</summary>
    public const string Category = "PgProxy.QueryLog";

    /// <summary>Records held at most while the writer catches up.</summary>
    public const int QueueCapacity = 10_000;

    /// <summary>How long records gather before the writer takes them: the queue holds 200,000 lines a second at this pace.</summary>
    public static readonly TimeSpan BatchInterval = TimeSpan.FromMilliseconds(50);

    // A batch is written as one event of at most about this many bytes, so that one event stays a modest string.
    private const int BatchBytes = 1 << 20;

    private readonly Channel<QueryLogRecord> queue = Channel.CreateBounded<QueryLogRecord>(
        new BoundedChannelOptions(QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    private readonly ILogger lines;
    private readonly ILogger log;
    private readonly Task writer;
    private readonly ArrayBufferWriter<byte> batch = new(64 * 1024);
    private JsonLines? jsonLines;
    private long dropped;
    private long droppedReported;
    private long lastDropReport;

    public QueryLog(ILoggerFactory loggerFactory)
    {
        lines = loggerFactory.CreateLogger(Category);
        log = loggerFactory.CreateLogger("PgProxy.Statistics");
        writer = Task.Run(WriteAsync);
    }

    /// <summary>Records dropped because the queue was full, since start.</summary>
    public long Dropped => Interlocked.Read(ref dropped);

    /// <summary>Queues a record; never waits.</summary>
    public void Write(QueryLogRecord record)
    {
        if (!queue.Writer.TryWrite(record))
        {
            Interlocked.Increment(ref dropped);
        }
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        await writer.ConfigureAwait(false);
        if (jsonLines is not null)
        {
            await jsonLines.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task WriteAsync()
    {
        using var pace = new PeriodicTimer(BatchInterval);
        while (await queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (queue.Reader.TryRead(out QueryLogRecord? record))
            {
                Append(record);
                if (batch.WrittenCount >= BatchBytes)
                {
                    EmitBatch();
                }
            }

            EmitBatch();
            ReportDrops();
            if (!queue.Reader.Completion.IsCompleted)
            {
                await pace.WaitForNextTickAsync().ConfigureAwait(false);
            }
        }

        ReportDrops(force: true);
    }

    /// <summary>For the benchmarks: one record's line added to the batch, as the writer's task adds it.</summary>
    internal void AppendLine(QueryLogRecord record) => Append(record);

    /// <summary>For the benchmarks: the batch emptied without writing it.</summary>
    internal void ResetBatch() => batch.ResetWrittenCount();

    /// <summary>Adds one record's line, newline-terminated, to the batch.</summary>
    private void Append(QueryLogRecord record)
    {
        QueryLogConfig current = record.Settings;
        if (current.Format == QueryLogFormat.Json)
        {
            // Created with the first JSON line: a process without a query log never loads System.Text.Json.
            (jsonLines ??= new JsonLines(batch)).Append(record, current);
        }
        else
        {
            string line = Text(record, current);
            Encoding.UTF8.GetBytes(line, batch);
        }

        batch.Write("\n"u8);
    }

    /// <summary>Writes the batch as one log event (the file's template ends it with the last newline).</summary>
    private void EmitBatch()
    {
        if (batch.WrittenCount == 0)
        {
            return;
        }

        string text = Encoding.UTF8.GetString(batch.WrittenSpan[..^1]);
        QueryLine(lines, text);

        batch.ResetWrittenCount();
    }

    private void ReportDrops(bool force = false)
    {
        long now = Environment.TickCount64;
        long total = Dropped;
        if (total == droppedReported || (!force && now - lastDropReport < 1000))
        {
            return;
        }

        LinesDropped(log, total - droppedReported, total);
        droppedReported = total;
        lastDropReport = now;
    }

    private static string Text(QueryLogRecord record, QueryLogConfig current)
    {
        var line = new StringBuilder(256);
        line.Append(CultureInfo.InvariantCulture, $"{record.Time:yyyy-MM-dd HH:mm:ss.fff zzz} session={record.SessionId} instance={record.Instance}");
        line.Append(CultureInfo.InvariantCulture, $" user={record.User} database={record.Database} application_name={Quote(record.ApplicationName)} client={record.ClientAddress}");
        line.Append(CultureInfo.InvariantCulture, $" fingerprint={record.Shape.FingerprintText} duration_ms={record.Microseconds / 1000:0.###} rows={record.Rows}");
        line.Append(CultureInfo.InvariantCulture, $" sqlstate={record.SqlState ?? "00000"} changed_by={record.ChangedBy ?? "-"}");
        if (current.Parameters && record.Parameters is { } parameters)
        {
            line.Append(" parameters=[").AppendJoin(", ", parameters.Select(Quote)).Append(']');
        }

        line.Append(" query=").Append(Quote(Query(record, current)));
        return line.ToString();
    }

    /// <summary>
    /// The text a line shows, passwords taken out: with <c>parameters: true</c> it is the client's own text, which may
    /// hold <c>PASSWORD '…'</c>; the normalized text has no literals, and is checked all the same. Done here, on the
    /// writer's task, so a session never pays for it.
    /// </summary>
    private static string Query(QueryLogRecord record, QueryLogConfig current) =>
        PasswordRedaction.Redact(current.Parameters ? record.Text ?? record.Shape.Text : record.Shape.NormalizedText);

    // Quoted so that a line is one line whatever the text holds.
    private static string Quote(string? text) => text is null ? "-" : JsonSerializer.Serialize(text);

    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "{Line}")]
    private static partial void QueryLine(ILogger logger, string line);

    [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "The query log dropped {Count} lines because its queue was full ({Total} since start)")]
    private static partial void LinesDropped(ILogger logger, long count, long total);

    /// <summary>The JSON format's writer and its caches, used by the one writer task.</summary>
    private sealed class JsonLines(ArrayBufferWriter<byte> batch) : IAsyncDisposable
    {
        private readonly Utf8JsonWriter json = new(batch);

        public void Append(QueryLogRecord record, QueryLogConfig current)
        {
            json.Reset(batch);
            json.WriteStartObject();
            json.WriteString(Names.Time, record.Time);
            json.WriteNumber(Names.Session, record.SessionId);
            json.WriteString(Names.Instance, Encoded(record.Instance));
            json.WriteString(Names.User, Encoded(record.User));
            json.WriteString(Names.Database, Encoded(record.Database));
            WriteEncodedOrNull(Names.ApplicationName, record.ApplicationName);
            WriteEncodedOrNull(Names.Client, record.ClientAddress);
            (JsonEncodedText fingerprint, JsonEncodedText normalized) = EncodedShape(record.Shape);
            json.WriteString(Names.Fingerprint, fingerprint);
            if (current.Parameters)
            {
                json.WriteString(Names.Query, Query(record, current));
            }
            else
            {
                json.WriteString(Names.Query, normalized);
            }

            json.WriteNumber(Names.DurationMs, Math.Round(record.Microseconds / 1000, 3));
            json.WriteNumber(Names.Rows, record.Rows);
            WriteEncodedOrNull(Names.SqlState, record.SqlState);
            WriteEncodedOrNull(Names.ChangedBy, record.ChangedBy);
            if (current.Parameters && record.Parameters is { } parameters)
            {
                json.WriteStartArray(Names.Parameters);
                foreach (string? parameter in parameters)
                {
                    json.WriteStringValue(parameter);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
            json.Flush();
        }

        // The writer's own caches (one task uses them): the same few names, users and statements come back line after
        // line, so each is escaped and transcoded to UTF-8 once, not per line.
        private readonly Dictionary<string, JsonEncodedText> encodedValues = new(StringComparer.Ordinal);
        private readonly Dictionary<QueryShape, (JsonEncodedText Fingerprint, JsonEncodedText Normalized)> encodedShapes = new(ReferenceEqualityComparer.Instance);
        private const int EncodedLimit = 10_000;

        private JsonEncodedText Encoded(string value)
        {
            if (!encodedValues.TryGetValue(value, out JsonEncodedText encoded))
            {
                if (encodedValues.Count >= EncodedLimit)
                {
                    encodedValues.Clear();
                }

                encodedValues[value] = encoded = JsonEncodedText.Encode(value);
            }

            return encoded;
        }

        private (JsonEncodedText Fingerprint, JsonEncodedText Normalized) EncodedShape(QueryShape shape)
        {
            if (!encodedShapes.TryGetValue(shape, out (JsonEncodedText, JsonEncodedText) encoded))
            {
                if (encodedShapes.Count >= EncodedLimit)
                {
                    encodedShapes.Clear();
                }

                // The normalized text has no literals; checked for a password all the same.
                encodedShapes[shape] = encoded = (JsonEncodedText.Encode(shape.FingerprintText), JsonEncodedText.Encode(PasswordRedaction.Redact(shape.NormalizedText)));
            }

            return encoded;
        }

        private void WriteEncodedOrNull(JsonEncodedText name, string? value)
        {
            if (value is null)
            {
                json.WriteNull(name);
            }
            else
            {
                json.WriteString(name, Encoded(value));
            }
        }

        private static class Names
        {
            public static readonly JsonEncodedText Time = JsonEncodedText.Encode("time");
            public static readonly JsonEncodedText Session = JsonEncodedText.Encode("session");
            public static readonly JsonEncodedText Instance = JsonEncodedText.Encode("instance");
            public static readonly JsonEncodedText User = JsonEncodedText.Encode("user");
            public static readonly JsonEncodedText Database = JsonEncodedText.Encode("database");
            public static readonly JsonEncodedText ApplicationName = JsonEncodedText.Encode("application_name");
            public static readonly JsonEncodedText Client = JsonEncodedText.Encode("client");
            public static readonly JsonEncodedText Fingerprint = JsonEncodedText.Encode("fingerprint");
            public static readonly JsonEncodedText Query = JsonEncodedText.Encode("query");
            public static readonly JsonEncodedText DurationMs = JsonEncodedText.Encode("duration_ms");
            public static readonly JsonEncodedText Rows = JsonEncodedText.Encode("rows");
            public static readonly JsonEncodedText SqlState = JsonEncodedText.Encode("sqlstate");
            public static readonly JsonEncodedText ChangedBy = JsonEncodedText.Encode("changed_by");
            public static readonly JsonEncodedText Parameters = JsonEncodedText.Encode("parameters");
        }

        public ValueTask DisposeAsync() => json.DisposeAsync();
    }
}

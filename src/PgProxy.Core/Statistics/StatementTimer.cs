using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Diagnostics;
using System.Text;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Server;
using PgProxy.Protocol;

namespace PgProxy.Core.Statistics;

/// <summary>Who runs a session's statements, as statistics and the query log name them.</summary>
internal sealed record StatementSource(long SessionId, string Instance, string Database, string User, string? ApplicationName, string? ClientAddress);

/// <summary>
/// Times one session's statements for <see cref="QueryStatistics"/> and the <see cref="QueryLog"/>, from what the
/// pumps observe: a statement starts when its Query or Execute reaches the server (or when the one before it ends,
/// since the server runs them in order) and ends at its CommandComplete, PortalSuspended or ErrorResponse. In the
/// extended protocol the shape is taken at Parse and carried by the statement and portal names. After an error the
/// server skips to the end of the Query or to the Sync, and so do the statements waiting here. The frontend pump
/// enqueues, the backend pump dequeues; handlers that change a statement say so first (<see cref="NoteRewrite"/>,
/// <see cref="NoteRefusal"/>). Without <paramref name="shapes"/> (only metrics are on) nothing is parsed: statements
/// are timed, not told apart.
/// </summary>
internal sealed class StatementTimer(
    QueryStatistics? statistics,
    QueryLog? queryLog,
    QueryLogConfig? queryLogSettings,
    QueryShapes? shapes,
    ProxyMetrics? metrics,
    ServerProtocolState state,
    StatementSource source)
{
    private static readonly byte[] Unnamed = [];
    private static readonly QueryShape[] Unshaped = [QueryShape.Unparsable];
    private readonly PumpQueue<Pending> pending = new();
    private readonly Dictionary<QueryShape, QueryEntry> entries = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<byte[], Prepared> statements = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], Bound> portals = new(ByteKeyComparer.Instance);
    private readonly InstanceStatistics? totals = statistics?.ForInstance(source.Instance);
    private long lastEnded;
    private long transactionStarted;
    private string? rewrittenBy;
    private (string By, QueryShape[] Original)? refusal;

    /// <summary>Whether the pumps must give this observer a frame of this type whole.</summary>
    public static bool NeedsBody(bool frontend, byte code) => frontend
        ? (FrontendMessageCode)code is FrontendMessageCode.Query or FrontendMessageCode.Parse or FrontendMessageCode.Bind
            or FrontendMessageCode.Execute or FrontendMessageCode.Close
        : (BackendMessageCode)code is BackendMessageCode.CommandComplete or BackendMessageCode.ErrorResponse or BackendMessageCode.ReadyForQuery;

    /// <summary>The statement the server is running, or will run next; null when none is waiting.</summary>
    public QueryShape? Running => pending.TryPeek(out Pending head) && !head.IsEndOfRequest ? head.Shape : null;

    /// <summary>The next Query or Parse the server receives was rewritten by <paramref name="by"/> (a rule or plugin).</summary>
    public void NoteRewrite(string by) => rewrittenBy = by;

    /// <summary>
    /// The next Query or Parse the server receives raises a refusal by <paramref name="by"/> in place of
    /// <paramref name="originalText"/> (the client's text, as sent): statistics count it on the client's statement.
    /// </summary>
    public void NoteRefusal(string by, in ReadOnlySequence<byte> originalText)
    {
        if (shapes is null)
        {
            return;
        }

        QueryShape[] original = shapes.Of(originalText, Encoding);
        refusal = (by, original);
        foreach (QueryShape shape in original)
        {
            statistics?.RecordChange(KeyOf(shape), shape, by, refused: true, DateTimeOffset.UtcNow);
        }
    }

    /// <summary>Frontend pump: a message as the server receives it.</summary>
    public void OnFrontendMessage(byte code, in ReadOnlySequence<byte> body)
    {
        switch ((FrontendMessageCode)code)
        {
            case FrontendMessageCode.Query:
                OnQuery(WithoutTerminator(body));
                break;
            case FrontendMessageCode.Parse:
                if (TryReadName(body, out ReadOnlySequence<byte> name, out ReadOnlySequence<byte> rest) && TryReadName(rest, out ReadOnlySequence<byte> text, out _))
                {
                    QueryShape[] parsed = TakeRefusedShapes() ?? shapes?.Of(text, Encoding) ?? Unshaped;
                    QueryShape shape = parsed.Length == 1 ? parsed[0] : QueryShape.Unparsable;
                    string? changedBy = TakeChange(shape);

                    // The same statement parsed again (the unnamed one, every time) keeps its entry: no allocation.
                    string? own = queryLogSettings is { Parameters: true } ? Encoding.GetString(text) : null;
                    if (Find(statements, name) is not { } known || !ReferenceEquals(known.Shape, shape) || known.ChangedBy != changedBy || known.Text != own)
                    {
                        statements[Key(name)] = new Prepared(shape, changedBy, own);
                    }
                }

                break;
            case FrontendMessageCode.Bind:
                OnBind(body);
                break;
            case FrontendMessageCode.Execute:
                if (TryReadName(body, out ReadOnlySequence<byte> executed, out _))
                {
                    Bound? bound = Find(portals, executed);
                    Enqueue(new Pending(bound?.Statement.Shape ?? QueryShape.Unparsable, Stopwatch.GetTimestamp(), bound?.Statement.ChangedBy, bound?.Parameters, bound?.Statement.Text));
                }

                break;
            case FrontendMessageCode.Close:
                if (!body.IsEmpty && TryReadName(body.Slice(1), out ReadOnlySequence<byte> closed, out _))
                {
                    if (FirstByte(body) == (byte)'S')
                    {
                        Remove(statements, closed);
                    }
                    else
                    {
                        Remove(portals, closed);
                    }
                }

                break;
            case FrontendMessageCode.Sync:
            case FrontendMessageCode.FunctionCall:
                Enqueue(Pending.EndOfRequest);
                break;
        }
    }

    /// <summary>Backend pump: a message the server sent.</summary>
    public void OnBackendMessage(byte code, in ReadOnlySequence<byte> body)
    {
        switch ((BackendMessageCode)code)
        {
            case BackendMessageCode.CommandComplete:
                End(null, RowsOf(body));
                break;
            case BackendMessageCode.PortalSuspended:
                End(null, 0);
                break;
            case BackendMessageCode.EmptyQueryResponse:
                TakeStatement(out _);
                break;
            case BackendMessageCode.ErrorResponse:
                End(SqlStateOf(body) ?? "XX000", 0);
                Skip(untilEnd: false); // the server skips the rest of the Query, or everything up to the Sync
                break;
            case BackendMessageCode.ReadyForQuery:
                Skip(untilEnd: true);
                if (!body.IsEmpty && FirstByte(body) == (byte)'I')
                {
                    totals?.TransactionEnded();
                    if (transactionStarted != 0)
                    {
                        metrics?.TransactionCompleted(source.Instance, Stopwatch.GetElapsedTime(transactionStarted).TotalSeconds);
                        transactionStarted = 0;
                    }
                }

                break;
        }
    }

    private Encoding Encoding => state.ClientEncoding ?? PostgresEncodings.Utf8;

    private void OnQuery(in ReadOnlySequence<byte> text)
    {
        long now = Stopwatch.GetTimestamp();
        QueryShape[] parts = TakeRefusedShapes() ?? shapes?.Of(text, Encoding) ?? Unshaped;
        if (parts.Length == 0)
        {
            Enqueue(new Pending(null, now, null, null)); // an empty query: answered by EmptyQueryResponse
        }

        string? changedBy = parts.Length > 0 ? TakeChange(parts[0]) : null;

        // The shapes are cached by the text without its constants: the text as sent is this message's own, never the
        // text of the first message of that shape.
        string? own = queryLogSettings is { Parameters: true } && parts.Length > 0 ? Encoding.GetString(text) : null;
        foreach (QueryShape part in parts)
        {
            Enqueue(new Pending(part, now, changedBy, null, own));
        }

        Enqueue(Pending.EndOfRequest);
    }

    private void OnBind(in ReadOnlySequence<byte> body)
    {
        if (!TryReadName(body, out ReadOnlySequence<byte> portal, out ReadOnlySequence<byte> afterPortal)
            || !TryReadName(afterPortal, out ReadOnlySequence<byte> statement, out ReadOnlySequence<byte> afterStatement))
        {
            return;
        }

        if (Find(statements, statement) is { } prepared)
        {
            IReadOnlyList<string?>? values = queryLogSettings is { Parameters: true } ? ReadParameters(afterStatement) : null;
            Bound bound = values is null ? prepared.WithoutValues : new Bound(prepared, values);
            if (!ReferenceEquals(Find(portals, portal), bound))
            {
                portals[Key(portal)] = bound;
            }
        }
        else
        {
            Remove(portals, portal);
        }
    }

    /// <summary>The shapes a refusal stands for, once: the statement the server receives is the proxy's, not the client's.</summary>
    private QueryShape[]? TakeRefusedShapes()
    {
        if (refusal is not { } refused)
        {
            return null;
        }

        refusal = null;
        rewrittenBy = refused.By;
        return refused.Original;
    }

    private string? TakeChange(QueryShape shape)
    {
        string? by = rewrittenBy;
        rewrittenBy = null;
        if (by is not null && statistics is not null)
        {
            statistics.RecordChange(KeyOf(shape), shape, by, refused: false, DateTimeOffset.UtcNow);
        }

        return by;
    }

    private void Enqueue(Pending item)
    {
        if (!item.IsEndOfRequest && Volatile.Read(ref transactionStarted) == 0)
        {
            // Written here and reset by the backend at ReadyForQuery 'I': a statement sent while the previous
            // transaction is ending may start the next one a little early, which only widens its duration.
            Volatile.Write(ref transactionStarted, item.Sent);
        }

        pending.Enqueue(item);
    }

    /// <summary>Takes the oldest statement waiting, unless the oldest item is the end of a request. Only the backend dequeues.</summary>
    private bool TakeStatement(out Pending head) =>
        pending.TryPeek(out head) && !head.IsEndOfRequest && pending.TryDequeue(out head);

    /// <summary>Drops the statements waiting up to the end of their request, and that end too when <paramref name="untilEnd"/>.</summary>
    private void Skip(bool untilEnd)
    {
        while (pending.TryPeek(out Pending head))
        {
            if (head.IsEndOfRequest && !untilEnd)
            {
                return;
            }

            pending.TryDequeue(out _);
            if (head.IsEndOfRequest)
            {
                return;
            }
        }
    }

    private void End(string? sqlState, long rows)
    {
        if (!TakeStatement(out Pending head))
        {
            return; // an error at Sync, or a response PgProxy cannot pair: nothing is timed
        }

        long now = Stopwatch.GetTimestamp();
        long started = Math.Max(head.Sent, lastEnded);
        lastEnded = now;
        if (head.Shape is not { } shape)
        {
            return;
        }

        double microseconds = Stopwatch.GetElapsedTime(started, now).TotalMicroseconds;
        metrics?.QueryCompleted(source.Instance, microseconds / 1_000_000);
        if (statistics is not null)
        {
            EntryOf(shape).Record(microseconds, rows, failed: sqlState is not null, DateTimeOffset.UtcNow);
            totals!.StatementEnded(microseconds, sqlState);
        }
        if (queryLog is not null && queryLogSettings is { } settings && microseconds >= settings.MinDuration.TotalMicroseconds)
        {
            var record = new QueryLogRecord(
                DateTimeOffset.UtcNow, source.SessionId, source.Instance, source.User, source.Database, source.ApplicationName, source.ClientAddress,
                shape, microseconds, rows, sqlState, head.ChangedBy, head.Parameters, settings)
            {
                Text = head.Text,
            };
            queryLog.Write(record);
        }
    }

    /// <summary>The store's entry of a shape, remembered by the session so a repeated statement skips the store's lookup.</summary>
    private QueryEntry EntryOf(QueryShape shape)
    {
        if (entries.TryGetValue(shape, out QueryEntry? entry) && !entry.Evicted)
        {
            return entry;
        }

        if (entries.Count >= 256)
        {
            entries.Clear();
        }

        entry = statistics!.EntryFor(KeyOf(shape), shape);
        entries[shape] = entry;
        return entry;
    }

    private QueryKey KeyOf(QueryShape shape) => new(source.Instance, source.Database, source.User, shape.Fingerprint);

    /// <summary>The row count at the end of a command tag (SELECT 5, INSERT 0 5, UPDATE 3, COPY 10); 0 when there is none.</summary>
    internal static long RowsOf(in ReadOnlySequence<byte> body)
    {
        Span<byte> tag = stackalloc byte[64];
        int length = (int)Math.Min(body.Length, tag.Length);
        body.Slice(body.Length - length).CopyTo(tag);
        ReadOnlySpan<byte> text = tag[..length].TrimEnd((byte)0);
        int space = text.LastIndexOf((byte)' ');
        return space >= 0 && Utf8Parser.TryParse(text[(space + 1)..], out long rows, out int consumed) && consumed == text.Length - space - 1 ? rows : 0;
    }

    /// <summary>The SQLSTATE field ('C') of an ErrorResponse.</summary>
    internal static string? SqlStateOf(in ReadOnlySequence<byte> body)
    {
        var reader = new SequenceReader<byte>(body);
        while (reader.TryRead(out byte field) && field != 0)
        {
            if (!reader.TryReadTo(out ReadOnlySequence<byte> value, 0))
            {
                return null;
            }

            if (field == (byte)'C')
            {
                return Encoding.ASCII.GetString(value);
            }
        }

        return null;
    }

    /// <summary>A Bind's parameter values after its names: text ones decoded, binary ones as \x hex, NULL as null.</summary>
    private List<string?>? ReadParameters(in ReadOnlySequence<byte> rest)
    {
        var reader = new SequenceReader<byte>(rest);
        if (!reader.TryReadBigEndian(out short formatCount) || formatCount < 0)
        {
            return null;
        }

        var formats = new short[formatCount];
        for (int i = 0; i < formatCount; i++)
        {
            if (!reader.TryReadBigEndian(out formats[i]))
            {
                return null;
            }
        }

        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            return null;
        }

        var values = new List<string?>(count);
        for (int i = 0; i < count; i++)
        {
            if (!reader.TryReadBigEndian(out int length))
            {
                return null;
            }

            if (length < 0)
            {
                values.Add(null);
                continue;
            }

            if (reader.Remaining < length)
            {
                return null;
            }

            byte[] value = reader.UnreadSequence.Slice(0, length).ToArray();
            reader.Advance(length);
            short format = formatCount switch { 0 => 0, 1 => formats[0], _ => i < formatCount ? formats[i] : (short)0 };
            values.Add(format == 0 ? Encoding.GetString(value) : "\\x" + Convert.ToHexStringLower(value));
        }

        return values;
    }

    private static ReadOnlySequence<byte> WithoutTerminator(in ReadOnlySequence<byte> body) =>
        body.Length > 0 ? body.Slice(0, body.Length - 1) : body;

    private static bool TryReadName(in ReadOnlySequence<byte> body, out ReadOnlySequence<byte> name, out ReadOnlySequence<byte> rest)
    {
        SequencePosition? end = body.PositionOf((byte)0);
        if (end is null)
        {
            name = rest = default;
            return false;
        }

        name = body.Slice(0, end.Value);
        rest = body.Slice(body.GetPosition(1, end.Value));
        return true;
    }

    private static byte FirstByte(in ReadOnlySequence<byte> body) => body.FirstSpan.Length > 0 ? body.FirstSpan[0] : body.Slice(0, 1).ToArray()[0];

    private static byte[] Key(in ReadOnlySequence<byte> name) => name.IsEmpty ? Unnamed : name.ToArray();

    private static T? Find<T>(Dictionary<byte[], T> map, in ReadOnlySequence<byte> name)
        where T : class
    {
        if (name.IsSingleSegment)
        {
            return map.GetAlternateLookup<ReadOnlySpan<byte>>().TryGetValue(name.FirstSpan, out T? value) ? value : null;
        }

        return map.GetValueOrDefault(name.ToArray());
    }

    private static void Remove<T>(Dictionary<byte[], T> map, in ReadOnlySequence<byte> name)
    {
        if (name.IsSingleSegment)
        {
            map.GetAlternateLookup<ReadOnlySpan<byte>>().Remove(name.FirstSpan);
        }
        else
        {
            map.Remove(name.ToArray());
        }
    }

    /// <summary>A prepared statement: its shape, and who rewrote it.</summary>
    private sealed record Prepared(QueryShape Shape, string? ChangedBy, string? Text = null)
    {
        /// <summary>The portal of every Bind whose values are not logged: one per statement, not one per Bind.</summary>
        public Bound WithoutValues => field ??= new Bound(this, null);
    }

    /// <summary>A portal: its statement, and the values it was bound with (only when the query log writes them).</summary>
    private sealed record Bound(Prepared Statement, IReadOnlyList<string?>? Parameters);

    /// <summary>A statement sent and not yet answered; or the end of a Query, Sync or FunctionCall.</summary>
    private readonly record struct Pending(QueryShape? Shape, long Sent, string? ChangedBy, IReadOnlyList<string?>? Parameters, string? Text = null, bool IsEndOfRequest = false)
    {
        public static Pending EndOfRequest => new(null, 0, null, null, IsEndOfRequest: true);
    }
}

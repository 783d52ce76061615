using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using PgProxy.Core.Server;
using PgProxy.Protocol;

namespace PgProxy.Core.Statistics;

/// <summary>
/// Times one session's statements for <see cref="QueryStatistics"/>, from what the pumps observe: a statement starts
/// when its Query or Execute reaches the server (or when the one before it ends, since the server runs them in order)
/// and ends at its CommandComplete, PortalSuspended or ErrorResponse. In the extended protocol the shape is taken at
/// Parse and carried by the statement and portal names. After an error the server skips to the end of the Query or to
/// the Sync, and so do the statements waiting here. The frontend pump enqueues, the backend pump dequeues.
/// </summary>
internal sealed class StatementTimer(QueryStatistics statistics, QueryShapes shapes, ServerProtocolState state, string instance, string database, string user)
{
    private static readonly byte[] Unnamed = [];
    private readonly ConcurrentQueue<Pending> pending = new();
    private readonly Dictionary<byte[], QueryShape> statements = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], QueryShape> portals = new(ByteKeyComparer.Instance);
    private long lastEnded;

    /// <summary>Whether the pumps must give this observer a frame of this type whole.</summary>
    public static bool NeedsBody(bool frontend, byte code) => frontend
        ? (FrontendMessageCode)code is FrontendMessageCode.Query or FrontendMessageCode.Parse or FrontendMessageCode.Bind
            or FrontendMessageCode.Execute or FrontendMessageCode.Close
        : (BackendMessageCode)code == BackendMessageCode.CommandComplete;

    /// <summary>Frontend pump: a message as the server receives it.</summary>
    public void OnFrontendMessage(byte code, in ReadOnlySequence<byte> body)
    {
        switch ((FrontendMessageCode)code)
        {
            case FrontendMessageCode.Query:
                long now = Stopwatch.GetTimestamp();
                QueryShape[] parts = shapes.Of(WithoutTerminator(body), Encoding);
                if (parts.Length == 0)
                {
                    pending.Enqueue(new Pending(null, now)); // an empty query: answered by EmptyQueryResponse
                }

                foreach (QueryShape part in parts)
                {
                    pending.Enqueue(new Pending(part, now));
                }

                pending.Enqueue(Pending.EndOfRequest);
                break;
            case FrontendMessageCode.Parse:
                if (TryReadName(body, out ReadOnlySequence<byte> name, out ReadOnlySequence<byte> rest) && TryReadName(rest, out ReadOnlySequence<byte> text, out _))
                {
                    QueryShape[] parsed = shapes.Of(text, Encoding);
                    statements[Key(name)] = parsed.Length == 1 ? parsed[0] : QueryShape.Unparsable;
                }

                break;
            case FrontendMessageCode.Bind:
                if (TryReadName(body, out ReadOnlySequence<byte> portal, out ReadOnlySequence<byte> afterPortal) && TryReadName(afterPortal, out ReadOnlySequence<byte> statement, out _))
                {
                    if (Find(statements, statement) is { } bound)
                    {
                        portals[Key(portal)] = bound;
                    }
                    else
                    {
                        Remove(portals, portal);
                    }
                }

                break;
            case FrontendMessageCode.Execute:
                if (TryReadName(body, out ReadOnlySequence<byte> executed, out _))
                {
                    pending.Enqueue(new Pending(Find(portals, executed) ?? QueryShape.Unparsable, Stopwatch.GetTimestamp()));
                }

                break;
            case FrontendMessageCode.Close:
                if (!body.IsEmpty && TryReadName(body.Slice(1), out ReadOnlySequence<byte> closed, out _))
                {
                    Remove(SequenceBytesFirst(body) == (byte)'S' ? statements : portals, closed);
                }

                break;
            case FrontendMessageCode.Sync:
            case FrontendMessageCode.FunctionCall:
                pending.Enqueue(Pending.EndOfRequest);
                break;
        }
    }

    /// <summary>Backend pump: a message the server sent.</summary>
    public void OnBackendMessage(byte code, in ReadOnlySequence<byte> body)
    {
        switch ((BackendMessageCode)code)
        {
            case BackendMessageCode.CommandComplete:
                End(failed: false, RowsOf(body));
                break;
            case BackendMessageCode.PortalSuspended:
                End(failed: false, 0);
                break;
            case BackendMessageCode.EmptyQueryResponse:
                if (pending.TryPeek(out Pending empty) && !empty.IsEndOfRequest)
                {
                    pending.TryDequeue(out _);
                }

                break;
            case BackendMessageCode.ErrorResponse:
                End(failed: true, 0);

                // The server skips the rest of the Query, or everything up to the Sync.
                while (pending.TryPeek(out Pending skipped) && !skipped.IsEndOfRequest)
                {
                    pending.TryDequeue(out _);
                }

                break;
            case BackendMessageCode.ReadyForQuery:
                while (pending.TryDequeue(out Pending answered) && !answered.IsEndOfRequest)
                {
                }

                break;
        }
    }

    private Encoding Encoding => state.ClientEncoding ?? PostgresEncodings.Utf8;

    private void End(bool failed, long rows)
    {
        if (!pending.TryPeek(out Pending head) || head.IsEndOfRequest)
        {
            return; // an error at Sync, or a response PgProxy cannot pair: nothing is timed
        }

        pending.TryDequeue(out _);
        long now = Stopwatch.GetTimestamp();
        long started = Math.Max(head.Sent, lastEnded);
        lastEnded = now;
        if (head.Shape is { } shape)
        {
            double microseconds = Stopwatch.GetElapsedTime(started, now).TotalMicroseconds;
            statistics.Record(new QueryKey(instance, database, user, shape.Fingerprint), shape, microseconds, rows, failed, DateTimeOffset.UtcNow);
        }
    }

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

    private static byte SequenceBytesFirst(in ReadOnlySequence<byte> body) => body.FirstSpan.Length > 0 ? body.FirstSpan[0] : body.Slice(0, 1).ToArray()[0];

    private static byte[] Key(in ReadOnlySequence<byte> name) => name.IsEmpty ? Unnamed : name.ToArray();

    private static QueryShape? Find(Dictionary<byte[], QueryShape> map, in ReadOnlySequence<byte> name)
    {
        if (name.IsSingleSegment)
        {
            return map.GetAlternateLookup<ReadOnlySpan<byte>>().TryGetValue(name.FirstSpan, out QueryShape? shape) ? shape : null;
        }

        return map.GetValueOrDefault(name.ToArray());
    }

    private static void Remove(Dictionary<byte[], QueryShape> map, in ReadOnlySequence<byte> name)
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

    /// <summary>A statement sent and not yet answered; or the end of a Query, Sync or FunctionCall.</summary>
    private readonly record struct Pending(QueryShape? Shape, long Sent, bool IsEndOfRequest = false)
    {
        public static Pending EndOfRequest => new(null, 0, IsEndOfRequest: true);
    }
}

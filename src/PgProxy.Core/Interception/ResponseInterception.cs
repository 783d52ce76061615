using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Abstractions;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Interception;

/// <summary>
/// Runs the instance's response interceptors on the server messages of the kinds they asked for. Which message codes
/// the backend must take is decided once per session, in a table: every other message passes as raw bytes. A message is
/// decoded only when some interceptor wants its kind, and re-encoded only when an interceptor changed it.
/// </summary>
internal sealed class ResponseInterception
{
    private readonly bool[] taken = new bool[256];
    private readonly SessionContext context;
    private readonly InstanceInterceptors interceptors;
    private readonly ArrayBufferWriter<byte> output = new(256);
    private readonly InterceptorRunner<IResponseInterceptor, ResponseMessage, ResponseDecision> runner;

    public ResponseInterception(SessionContext context, InstanceInterceptors interceptors)
    {
        this.context = context;
        this.interceptors = interceptors;
        runner = new(InterceptorKinds.Response, context);
        ResponseKinds kinds = interceptors.ResponseKinds;
        if ((kinds & ResponseKinds.DataRow) != 0)
        {
            Tracker = new ResultColumnTracker();
            foreach (char code in "123TnDCIsEZ")
            {
                taken[code] = true;
            }
        }

        taken['T'] |= (kinds & ResponseKinds.RowDescription) != 0;
        taken['C'] |= (kinds & ResponseKinds.CommandComplete) != 0;
        taken['E'] |= (kinds & ResponseKinds.ErrorResponse) != 0;
        taken['N'] |= (kinds & ResponseKinds.NoticeResponse) != 0;
        taken['S'] |= (kinds & ResponseKinds.ParameterStatus) != 0;
    }

    /// <summary>Present when DataRows are intercepted: the columns of every row are tracked.</summary>
    public ResultColumnTracker? Tracker { get; }

    /// <summary>Whether the backend must take frames with this code whole (to decode or to track columns).</summary>
    public bool Takes(byte code) => taken[code];

    /// <summary>Lets the tracker learn from a response, before it is intercepted or diverted.</summary>
    public void Track(byte code, in ReadOnlySequence<byte> body)
    {
        if (Tracker is not { } tracker)
        {
            return;
        }

        switch ((BackendMessageCode)code)
        {
            case BackendMessageCode.ParseComplete:
                tracker.OnParseComplete();
                break;
            case BackendMessageCode.BindComplete:
                tracker.OnBindComplete();
                break;
            case BackendMessageCode.CloseComplete:
                tracker.OnCloseComplete();
                break;
            case BackendMessageCode.RowDescription:
                tracker.OnRowDescription(TryReadColumns(body, context.ClientEncoding, out ResponseColumn[] columns) ? columns : []);
                break;
            case BackendMessageCode.NoData:
                tracker.OnRowDescription([]);
                break;
            case BackendMessageCode.CommandComplete:
            case BackendMessageCode.EmptyQueryResponse:
            case BackendMessageCode.PortalSuspended:
                tracker.OnCompletion();
                break;
            case BackendMessageCode.ErrorResponse:
                tracker.OnError();
                break;
            case BackendMessageCode.ReadyForQuery:
                tracker.OnReadyForQuery();
                break;
        }
    }

    /// <summary>
    /// Runs the interceptors on one frame and writes what results: the frame as it was, re-encoded, or (a DataRow an
    /// interceptor refused, or failed on under the refuse policy) nothing.
    /// </summary>
    public async ValueTask WriteAsync(byte code, ReadOnlySequence<byte> frame, Stream destination, CancellationToken cancellationToken)
    {
        ResponseKinds kind = KindOf(code);
        if ((kind & interceptors.ResponseKinds) == 0 || Decode(code, kind, frame.Slice(5)) is not { } message)
        {
            await WriteRawAsync(destination, frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        foreach (InterceptorEntry<IResponseInterceptor> interceptor in interceptors.Responses)
        {
            if ((interceptor.Interceptor.Kinds & kind) == 0)
            {
                continue;
            }

            ResponseDecision decision = await runner.RunAsync(interceptor, message, cancellationToken).ConfigureAwait(false);
            if (decision.IsRefusal)
            {
                if (kind == ResponseKinds.DataRow)
                {
                    InterceptLog.RowWithheld(context.Logger, context.SessionId, interceptor.Name, decision.RefusalSqlState!, decision.RefusalMessage!);
                    return; // withheld: a refused row, or one its interceptor could not handle under refuse, never goes out
                }

                InterceptLog.ResponseRefused(context.Logger, context.SessionId, kind, interceptor.Name, decision.RefusalSqlState!, decision.RefusalMessage!);
                break;
            }
        }

        if (!message.IsChanged)
        {
            await WriteRawAsync(destination, frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        output.ResetWrittenCount();
        Encode(output, code, message);
        if (kind == ResponseKinds.DataRow)
        {
            InterceptLog.RowChanged(context.Logger, context.SessionId); // per row: at debug level, or the log would hold every row
        }
        else
        {
            InterceptLog.ResponseChanged(context.Logger, context.SessionId, kind);
        }

        await destination.WriteAsync(output.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    private static ResponseKinds KindOf(byte code) => (BackendMessageCode)code switch
    {
        BackendMessageCode.RowDescription => ResponseKinds.RowDescription,
        BackendMessageCode.DataRow => ResponseKinds.DataRow,
        BackendMessageCode.CommandComplete => ResponseKinds.CommandComplete,
        BackendMessageCode.ErrorResponse => ResponseKinds.ErrorResponse,
        BackendMessageCode.NoticeResponse => ResponseKinds.NoticeResponse,
        BackendMessageCode.ParameterStatus => ResponseKinds.ParameterStatus,
        _ => ResponseKinds.None,
    };

    private ResponseMessage? Decode(byte code, ResponseKinds kind, ReadOnlySequence<byte> body)
    {
        Encoding encoding = context.ClientEncoding;
        try
        {
            switch (kind)
            {
                case ResponseKinds.DataRow:
                    return TryReadValues(body.ToArray(), out ReadOnlyMemory<byte>?[] values)
                        ? ResponseMessage.ForDataRow(Tracker?.ColumnsOfRow() ?? [], values, encoding)
                        : null;
                case ResponseKinds.RowDescription:
                    return TryReadColumns(body, encoding, out ResponseColumn[] columns) ? ResponseMessage.ForRowDescription(columns, encoding) : null;
                case ResponseKinds.CommandComplete:
                    var reader = new SequenceReader<byte>(body);
                    return TryReadCString(ref reader, encoding, out string tag) ? ResponseMessage.ForCommandComplete(tag, encoding) : null;
                case ResponseKinds.ErrorResponse:
                case ResponseKinds.NoticeResponse:
                    return ResponseMessage.ForFields(kind, BackendMessages.ReadFields(body, encoding), encoding);
                case ResponseKinds.ParameterStatus:
                    return BackendMessages.TryReadParameterStatus(body, out string name, out string value)
                        ? ResponseMessage.ForParameterStatus(name, value, encoding)
                        : null;
                default:
                    return null;
            }
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static void Encode(ArrayBufferWriter<byte> writer, byte code, ResponseMessage message)
    {
        Encoding encoding = message.Encoding;
        switch (message.Kind)
        {
            case ResponseKinds.DataRow:
                int length = 4 + 2;
                for (int i = 0; i < message.ValueCount; i++)
                {
                    length += 4 + (message.GetValue(i)?.Length ?? 0);
                }

                Span<byte> span = writer.GetSpan(1 + length);
                span[0] = code;
                BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
                BinaryPrimitives.WriteInt16BigEndian(span[5..], checked((short)message.ValueCount));
                int offset = 7;
                for (int i = 0; i < message.ValueCount; i++)
                {
                    ReadOnlyMemory<byte>? value = message.GetValue(i);
                    BinaryPrimitives.WriteInt32BigEndian(span[offset..], value?.Length ?? -1);
                    offset += 4;
                    if (value is { } bytes)
                    {
                        bytes.Span.CopyTo(span[offset..]);
                        offset += bytes.Length;
                    }
                }

                writer.Advance(offset);
                break;
            case ResponseKinds.CommandComplete:
                WriteStrings(writer, code, encoding, message.CommandTag!);
                break;
            case ResponseKinds.ParameterStatus:
                WriteStrings(writer, code, Encoding.UTF8, message.ParameterName!, message.ParameterValue!);
                break;
            case ResponseKinds.ErrorResponse:
            case ResponseKinds.NoticeResponse:
                BackendMessages.WriteFields(writer, (BackendMessageCode)code, encoding, message.Fields);
                break;
            default:
                throw new InvalidOperationException($"a {message.Kind} message cannot be changed");
        }
    }

    private static void WriteStrings(ArrayBufferWriter<byte> writer, byte code, Encoding encoding, params string[] values)
    {
        int length = 4 + values.Sum(value => encoding.GetByteCount(value) + 1);
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = code;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        int offset = 5;
        foreach (string value in values)
        {
            offset += encoding.GetBytes(value, span[offset..]);
            span[offset++] = 0;
        }

        writer.Advance(offset);
    }

    /// <summary>Decodes a RowDescription: per column a name, table OID, column number, type OID, size, modifier and format.</summary>
    internal static bool TryReadColumns(in ReadOnlySequence<byte> body, Encoding encoding, out ResponseColumn[] columns)
    {
        columns = [];
        var reader = new SequenceReader<byte>(body);
        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            return false;
        }

        var result = new ResponseColumn[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                if (!TryReadCString(ref reader, encoding, out string name)
                    || !reader.TryReadBigEndian(out int table)
                    || !reader.TryReadBigEndian(out short number)
                    || !reader.TryReadBigEndian(out int type)
                    || !reader.TryReadBigEndian(out short size)
                    || !reader.TryReadBigEndian(out int modifier)
                    || !reader.TryReadBigEndian(out short format))
                {
                    return false;
                }

                result[i] = new ResponseColumn(name, (uint)table, number, (uint)type, size, modifier, format);
            }
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        columns = result;
        return true;
    }

    private static bool TryReadValues(byte[] body, out ReadOnlyMemory<byte>?[] values)
    {
        values = [];
        if (body.Length < 2)
        {
            return false;
        }

        short count = BinaryPrimitives.ReadInt16BigEndian(body);
        if (count < 0)
        {
            return false;
        }

        var result = new ReadOnlyMemory<byte>?[count];
        int offset = 2;
        for (int i = 0; i < count; i++)
        {
            if (body.Length - offset < 4)
            {
                return false;
            }

            int length = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(offset));
            offset += 4;
            if (length < -1 || body.Length - offset < Math.Max(length, 0))
            {
                return false;
            }

            if (length >= 0)
            {
                result[i] = body.AsMemory(offset, length);
                offset += length;
            }
        }

        values = result;
        return offset == body.Length;
    }

    private static bool TryReadCString(ref SequenceReader<byte> reader, Encoding encoding, out string value)
    {
        if (!reader.TryReadTo(out ReadOnlySequence<byte> bytes, (byte)0))
        {
            value = string.Empty;
            return false;
        }

        value = bytes.IsSingleSegment ? encoding.GetString(bytes.FirstSpan) : encoding.GetString(bytes.ToArray());
        return true;
    }

    private static async ValueTask WriteRawAsync(Stream destination, ReadOnlySequence<byte> frame, CancellationToken cancellationToken)
    {
        foreach (ReadOnlyMemory<byte> segment in frame)
        {
            await destination.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }
    }
}

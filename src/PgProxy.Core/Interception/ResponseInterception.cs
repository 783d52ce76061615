using System.Buffers;
using System.Text;
using PgProxy.Abstractions;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// Runs the instance's response interceptors on the server messages of the kinds they asked for. Which message codes
/// the backend must take is decided once per session, in a table: every other message passes as raw bytes. A message is
/// decoded only when some interceptor wants its kind, and re-encoded only when an interceptor changed it. The columns
/// of a DataRow come from the server state's statement tracker (the session is created with one when DataRows are
/// intercepted).
/// </summary>
internal sealed class ResponseInterception : IFrameHandler
{
    private readonly bool[] taken = new bool[256];
    private readonly SessionContext context;
    private readonly InstanceInterceptors interceptors;
    private readonly ArrayBufferWriter<byte> output = new(256);
    private readonly InterceptorRunner<IResponseInterceptor, ResponseMessage, ResponseDecision> runner;
    private readonly StatementTracker? statements;

    private FieldDescription[]? lastFields;
    private ResponseColumn[] lastColumns = [];

    public ResponseInterception(SessionContext context, InstanceInterceptors interceptors, StatementTracker? statements)
    {
        this.context = context;
        this.interceptors = interceptors;
        this.statements = statements;
        runner = new(InterceptorKinds.Response, context);
        ResponseKinds kinds = interceptors.ResponseKinds;
        taken['D'] = (kinds & ResponseKinds.DataRow) != 0;
        taken['T'] |= (kinds & ResponseKinds.RowDescription) != 0;
        taken['C'] |= (kinds & ResponseKinds.CommandComplete) != 0;
        taken['E'] |= (kinds & ResponseKinds.ErrorResponse) != 0;
        taken['N'] |= (kinds & ResponseKinds.NoticeResponse) != 0;
        taken['S'] |= (kinds & ResponseKinds.ParameterStatus) != 0;
    }

    /// <summary>Whether DataRows are intercepted: the session's server state must then track statements.</summary>
    public static bool NeedsStatements(InstanceInterceptors interceptors) => (interceptors.ResponseKinds & ResponseKinds.DataRow) != 0;

    public bool Wants(byte code) => taken[code];

    public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken) =>
        WriteAsync(code, frame, next, cancellationToken);

    /// <summary>The columns of the DataRow arriving now, as interceptors see them; converted once per description.</summary>
    private ResponseColumn[] ColumnsOfRow()
    {
        FieldDescription[]? fields = statements?.ColumnsOfRow();
        if (fields is null)
        {
            return [];
        }

        if (!ReferenceEquals(fields, lastFields))
        {
            lastColumns = ToColumns(fields);
            lastFields = fields;
        }

        return lastColumns;
    }

    private static ResponseColumn[] ToColumns(FieldDescription[] fields) =>
        Array.ConvertAll(fields, f => new ResponseColumn(f.Name, f.TableOid, f.ColumnNumber, f.TypeOid, f.TypeSize, f.TypeModifier, f.FormatCode));

    /// <summary>
    /// Runs the interceptors on one frame and writes what results: the frame as it was, re-encoded, or (a DataRow an
    /// interceptor refused, or failed on under the refuse policy) nothing.
    /// </summary>
    public async ValueTask WriteAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink destination, CancellationToken cancellationToken)
    {
        ResponseKinds kind = KindOf(code);
        if ((kind & interceptors.ResponseKinds) == 0 || Decode(code, kind, frame.Slice(MessageHeader.Size)) is not { } message)
        {
            await destination.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
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
                context.Metrics?.Refused(context.InstanceName, interceptor.Name);
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
            await destination.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
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

        await destination.WriteAsync(new ReadOnlySequence<byte>(output.WrittenMemory), cancellationToken).ConfigureAwait(false);
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
                    return TryReadValues(body, out ReadOnlyMemory<byte>?[] values)
                        ? ResponseMessage.ForDataRow(ColumnsOfRow(), values, encoding)
                        : null;
                case ResponseKinds.RowDescription:
                    return TryReadColumns(body, encoding, out ResponseColumn[] columns) ? ResponseMessage.ForRowDescription(columns, encoding) : null;
                case ResponseKinds.CommandComplete:
                    return CommandCompleteMessage.TryRead(body, encoding, out string tag) ? ResponseMessage.ForCommandComplete(tag, encoding) : null;
                case ResponseKinds.ErrorResponse:
                case ResponseKinds.NoticeResponse:
                    return ErrorNoticeMessage.TryRead(body, encoding, out ErrorFields fields) ? ResponseMessage.ForFields(kind, fields.All, encoding) : null;
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
                WriteDataRow(writer, message);
                break;
            case ResponseKinds.CommandComplete:
                CommandCompleteMessage.Write(writer, encoding, message.CommandTag!);
                break;
            case ResponseKinds.ParameterStatus:
                ParameterStatusMessage.Write(writer, message.ParameterName!, message.ParameterValue!);
                break;
            case ResponseKinds.ErrorResponse:
            case ResponseKinds.NoticeResponse:
                BackendMessages.WriteFields(writer, (BackendMessageCode)code, encoding, message.Fields);
                break;
            default:
                throw new InvalidOperationException($"a {message.Kind} message cannot be changed");
        }
    }

    private static void WriteDataRow(ArrayBufferWriter<byte> writer, ResponseMessage message)
    {
        // The values are lent for the write only: a pooled array spares a changed row one more allocation.
        ReadOnlyMemory<byte>?[] values = ArrayPool<ReadOnlyMemory<byte>?>.Shared.Rent(message.ValueCount);
        try
        {
            for (int i = 0; i < message.ValueCount; i++)
            {
                values[i] = message.GetValue(i);
            }

            DataRowMessage.Write(writer, values.AsSpan(0, message.ValueCount));
        }
        finally
        {
            ArrayPool<ReadOnlyMemory<byte>?>.Shared.Return(values, clearArray: true);
        }
    }

    /// <summary>Decodes a RowDescription into the columns interceptors see.</summary>
    internal static bool TryReadColumns(in ReadOnlySequence<byte> body, Encoding encoding, out ResponseColumn[] columns)
    {
        columns = [];
        if (!RowDescriptionMessage.TryRead(body, encoding, out FieldDescription[] fields))
        {
            return false;
        }

        columns = ToColumns(fields);
        return true;
    }

    /// <summary>Decodes a DataRow's values, copied once into an array the interceptors may keep.</summary>
    private static bool TryReadValues(in ReadOnlySequence<byte> body, out ReadOnlyMemory<byte>?[] values)
    {
        values = [];
        if (!DataRowMessage.TryRead(new ReadOnlySequence<byte>(body.ToArray()), out DataRow row))
        {
            return false;
        }

        var result = new ReadOnlyMemory<byte>?[row.ColumnCount];
        int i = 0;
        foreach (DataRowValue value in row)
        {
            // The copy is one array, so every value is a single segment of it. The cast keeps NULL a null: a bare null
            // would convert through ReadOnlyMemory's implicit array operator into an empty value.
            result[i++] = value.IsNull ? (ReadOnlyMemory<byte>?)null : value.Bytes.First;
        }

        values = result;
        return true;
    }
}

using System.Buffers;
using System.Text;
using PgProxy.Abstractions;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// What the handlers that change queries (rules, query interceptors) share: decoding a Query or Parse in the client's
/// encoding, and writing what goes on in its place: the new text (a Parse keeps its statement name and parameter types
/// exactly), or a statement that makes the server raise a refusal, registered with the diversion so that the client
/// sees the error as if the server had refused. One per handler: its buffer is reused for every message.
/// </summary>
internal sealed class QueryFrameWriter(ServerProtocolState state, SessionContext context, ServerResponseHandler diversion)
{
    private readonly ArrayBufferWriter<byte> output = new(1024);

    /// <summary>The message's text and, for a Parse, the rest of it; null when it cannot be decoded (it then passes untouched).</summary>
    public QueryMessage? Decode(bool isQuery, in ReadOnlySequence<byte> body, out ParseMessage? parse)
    {
        parse = null;
        if (!context.HasDecodableEncoding)
        {
            return null;
        }

        try
        {
            if (isQuery)
            {
                return QueryMessages.TryReadQuery(body, context.ClientEncoding, out string text)
                    ? new QueryMessage(QueryMessageKind.SimpleQuery, text, null, [])
                    : null;
            }

            return QueryMessages.TryReadParse(body, context.ClientEncoding, out parse)
                ? new QueryMessage(QueryMessageKind.Parse, parse!.Text, parse.StatementName, parse.ParameterTypes)
                : null;
        }
        catch (DecoderFallbackException)
        {
            // Bytes that are not valid in the client encoding: the server will say so; the proxy changes nothing.
            return null;
        }
    }

    /// <summary>Writes the message with <paramref name="text"/> in place of its own.</summary>
    public ValueTask WriteTextAsync(bool isQuery, ParseMessage? parse, string text, IFrameSink next, CancellationToken cancellationToken)
    {
        output.ResetWrittenCount();
        if (isQuery)
        {
            QueryMessages.WriteQuery(output, context.ClientEncoding, text);
        }
        else
        {
            QueryMessages.WriteParse(output, context.ClientEncoding, parse!.StatementName, text, parse.ParameterTypes);
        }

        return next.WriteAsync(new ReadOnlySequence<byte>(output.WrittenMemory), cancellationToken);
    }

    /// <summary>
    /// Replaces the whole refused message by a statement that raises the refusal on the server (see
    /// <see cref="RefusalStatements"/>). For Parse, an unnamed Parse, Bind and Execute take its place; the server raises
    /// at Execute and then skips the client's messages up to its Sync, as it would after any error.
    /// </summary>
    public ValueTask RefuseAsync(bool isQuery, string sqlState, string message, IFrameSink next, CancellationToken cancellationToken)
    {
        string raise = RefusalStatements.RaiseError(sqlState, message);
        diversion.ExpectRefusal(state.NextRequestNumber, extended: !isQuery, sqlState, message);
        output.ResetWrittenCount();
        if (isQuery)
        {
            QueryMessages.WriteQuery(output, context.ClientEncoding, raise);
        }
        else
        {
            QueryMessages.WriteParse(output, context.ClientEncoding, string.Empty, raise, []);
            QueryMessages.WriteBindUnnamed(output);
            QueryMessages.WriteExecuteUnnamed(output);
        }

        return next.WriteAsync(new ReadOnlySequence<byte>(output.WrittenMemory), cancellationToken);
    }

    /// <summary>
    /// Writes a simple Query whose <paramref name="text"/> raises a refusal in one of its statements (the others run
    /// as the server would run them): the refusal's error is tidied like a whole refusal's.
    /// </summary>
    public ValueTask RefuseStatementAsync(string text, string sqlState, string message, IFrameSink next, CancellationToken cancellationToken)
    {
        diversion.ExpectRefusal(state.NextRequestNumber, extended: false, sqlState, message);
        return WriteTextAsync(isQuery: true, null, text, next, cancellationToken);
    }

    /// <summary>The query text of a Query or Parse frame, as the client sent it (for statistics of a refused one).</summary>
    public static ReadOnlySequence<byte> TextOf(bool isQuery, in ReadOnlySequence<byte> frame)
    {
        ReadOnlySequence<byte> body = frame.Slice(MessageHeader.Size);
        if (!isQuery && body.PositionOf((byte)0) is { } nameEnd)
        {
            body = body.Slice(body.GetPosition(1, nameEnd));
        }

        return body.PositionOf((byte)0) is { } textEnd ? body.Slice(0, textEnd) : body;
    }
}

using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Sessions;
using PgProxy.Core.Statistics;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// The frontend side of interception: decodes each Query and Parse in the client's encoding, runs the instance's query
/// interceptors in order, and writes upstream the message as it was, rewritten (statement name and parameter types
/// kept exactly), or replaced by a statement that raises the refusal on the server.
/// </summary>
internal sealed class ClientQueryHandler(
    ServerProtocolState state,
    SessionContext context,
    ServerResponseHandler responses,
    InstanceInterceptors interceptors,
    StatementTimer? timer = null) : IFrameHandler
{
    private readonly ArrayBufferWriter<byte> output = new(1024);
    private readonly InterceptorRunner<IQueryInterceptor, QueryMessage, QueryDecision> runner = new(InterceptorKinds.Query, context);

    public bool Wants(byte code) => code is (byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse;

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        bool isQuery = code == (byte)FrontendMessageCode.Query;

        string kind = isQuery ? "query" : "parse";
        QueryMessage? query = Decode(isQuery, frame.Slice(MessageHeader.Size), out ParseMessage? parse);
        if (query is null)
        {
            InterceptLog.Undecodable(context.Logger, context.SessionId, kind, context.ClientEncodingName);
            await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        string original = query.Text;
        string? changedBy = null;
        foreach (InterceptorEntry<IQueryInterceptor> interceptor in interceptors.Queries)
        {
            QueryDecision decision = await InvokeAsync(interceptor, query, cancellationToken).ConfigureAwait(false);
            if (decision.IsRefusal)
            {
                InterceptLog.Refused(context.Logger, context.SessionId, kind, interceptor.Name, decision.RefusalSqlState!, decision.RefusalMessage!, query.Text);
                timer?.NoteRefusal(interceptor.Name, TextOf(isQuery, frame));
                context.Metrics?.Refused(context.InstanceName, interceptor.Name);
                await RefuseAsync(isQuery, decision.RefusalSqlState!, decision.RefusalMessage!, next, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (decision.RewrittenText is { } text && !string.Equals(text, query.Text, StringComparison.Ordinal))
            {
                InterceptLog.Rewritten(context.Logger, context.SessionId, kind, interceptor.Name, query.Text, text);
                changedBy = changedBy is null ? interceptor.Name : $"{changedBy},{interceptor.Name}";
                context.Metrics?.Rewritten(context.InstanceName, interceptor.Name);
                query = new QueryMessage(query.Kind, text, query.StatementName, query.ParameterTypes);
            }
            else
            {
                InterceptLog.Unchanged(context.Logger, context.SessionId, kind, interceptor.Name, query.Text);
            }
        }

        if (ReferenceEquals(query.Text, original) || string.Equals(query.Text, original, StringComparison.Ordinal))
        {
            await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        timer?.NoteRewrite(changedBy!);
        output.ResetWrittenCount();
        if (isQuery)
        {
            QueryMessages.WriteQuery(output, context.ClientEncoding, query.Text);
        }
        else
        {
            QueryMessages.WriteParse(output, context.ClientEncoding, parse!.StatementName, query.Text, parse.ParameterTypes);
        }

        await next.WriteAsync(new ReadOnlySequence<byte>(output.WrittenMemory), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The query text of a Query or Parse frame, as the client sent it (for statistics of a refused one).</summary>
    private static ReadOnlySequence<byte> TextOf(bool isQuery, in ReadOnlySequence<byte> frame)
    {
        ReadOnlySequence<byte> body = frame.Slice(MessageHeader.Size);
        if (!isQuery && body.PositionOf((byte)0) is { } nameEnd)
        {
            body = body.Slice(body.GetPosition(1, nameEnd));
        }

        return body.PositionOf((byte)0) is { } textEnd ? body.Slice(0, textEnd) : body;
    }

    private QueryMessage? Decode(bool isQuery, ReadOnlySequence<byte> body, out ParseMessage? parse)
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

    private async ValueTask<QueryDecision> InvokeAsync(InterceptorEntry<IQueryInterceptor> interceptor, QueryMessage query, CancellationToken cancellationToken)
    {
        // Metadata queries are allowed while a query interceptor runs, and only then. A call that completes at once
        // completes this method at once too: nothing is allocated.
        context.CurrentInterceptor = interceptor.Name;
        try
        {
            return await runner.RunAsync(interceptor, query, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            context.CurrentInterceptor = null;
        }
    }

    /// <summary>
    /// Replaces the refused message by a statement that raises the refusal on the server (see
    /// <see cref="RefusalStatements"/>). For Parse, an unnamed Parse, Bind and Execute take its place; the server raises
    /// at Execute and then skips the client's messages up to its Sync, as it would after any error.
    /// </summary>
    private async ValueTask RefuseAsync(bool isQuery, string sqlState, string message, IFrameSink next, CancellationToken cancellationToken)
    {
        string raise = RefusalStatements.RaiseError(sqlState, message);
        responses.ExpectRefusal(state.NextRequestNumber, extended: !isQuery, sqlState, message);
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

        await next.WriteAsync(new ReadOnlySequence<byte>(output.WrittenMemory), cancellationToken).ConfigureAwait(false);
    }
}

using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;
using PgProxy.Abstractions;
using PgProxy.Core.Sessions;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// The frontend side of interception: decodes each Query and Parse in the client's encoding, runs the instance's query
/// interceptors in order, and writes upstream the message as it was, rewritten (statement name and parameter types
/// kept exactly), or replaced by a statement that raises the refusal on the server.
/// When DataRows are intercepted (<paramref name="tracker"/>), it also records, in order, every request that decides
/// which columns an Execute returns (Parse, Bind, Describe, Execute, Close, Sync, Query), before forwarding it.
/// </summary>
internal sealed class ClientQueryHandler(
    ServerProtocolState state,
    SessionContext context,
    ServerResponseHandler responses,
    InstanceInterceptors interceptors,
    ResultColumnTracker? tracker = null) : IFrameHandler
{
    private readonly ArrayBufferWriter<byte> output = new(1024);
    private readonly InterceptorRunner<IQueryInterceptor, QueryMessage, QueryDecision> runner = new(InterceptorKinds.Query, context);

    public bool Wants(byte code) => code switch
    {
        (byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse => true,
        (byte)FrontendMessageCode.Bind or (byte)FrontendMessageCode.Describe or (byte)FrontendMessageCode.Execute
            or (byte)FrontendMessageCode.Close or (byte)FrontendMessageCode.Sync or (byte)FrontendMessageCode.FunctionCall => tracker is not null,
        _ => false,
    };

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, Stream destination, CancellationToken cancellationToken)
    {
        if (code is not ((byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse))
        {
            await TrackAsync(code, frame, destination, cancellationToken).ConfigureAwait(false);
            return;
        }

        bool isQuery = code == (byte)FrontendMessageCode.Query;
        string? statement = null;
        if (!isQuery && tracker is not null)
        {
            ExtendedMessages.TryReadParseName(frame.Slice(MessageHeader.Size), out statement);
        }

        if (interceptors.Queries.Length == 0)
        {
            Record(isQuery, statement);
            await ForwardAsync(frame, destination, cancellationToken).ConfigureAwait(false);
            return;
        }

        string kind = isQuery ? "query" : "parse";
        QueryMessage? query = Decode(isQuery, frame.Slice(MessageHeader.Size), out ParseMessage? parse);
        if (query is null)
        {
            InterceptLog.Undecodable(context.Logger, context.SessionId, kind, context.ClientEncodingName);
            Record(isQuery, statement);
            await ForwardAsync(frame, destination, cancellationToken).ConfigureAwait(false);
            return;
        }

        string original = query.Text;
        foreach (InterceptorEntry<IQueryInterceptor> interceptor in interceptors.Queries)
        {
            QueryDecision decision = await InvokeAsync(interceptor, query, cancellationToken).ConfigureAwait(false);
            if (decision.IsRefusal)
            {
                InterceptLog.Refused(context.Logger, context.SessionId, kind, interceptor.Name, decision.RefusalSqlState!, decision.RefusalMessage!, query.Text);
                await RefuseAsync(isQuery, decision.RefusalSqlState!, decision.RefusalMessage!, destination, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (decision.RewrittenText is { } text && !string.Equals(text, query.Text, StringComparison.Ordinal))
            {
                InterceptLog.Rewritten(context.Logger, context.SessionId, kind, interceptor.Name, query.Text, text);
                query = new QueryMessage(query.Kind, text, query.StatementName, query.ParameterTypes);
            }
            else
            {
                InterceptLog.Unchanged(context.Logger, context.SessionId, kind, interceptor.Name, query.Text);
            }
        }

        Record(isQuery, statement);
        if (ReferenceEquals(query.Text, original) || string.Equals(query.Text, original, StringComparison.Ordinal))
        {
            await ForwardAsync(frame, destination, cancellationToken).ConfigureAwait(false);
            return;
        }

        output.ResetWrittenCount();
        if (isQuery)
        {
            QueryMessages.WriteQuery(output, context.ClientEncoding, query.Text);
        }
        else
        {
            QueryMessages.WriteParse(output, context.ClientEncoding, parse!.StatementName, query.Text, parse.ParameterTypes);
        }

        await destination.WriteAsync(output.WrittenMemory, cancellationToken).ConfigureAwait(false);
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
    private async ValueTask RefuseAsync(bool isQuery, string sqlState, string message, Stream destination, CancellationToken cancellationToken)
    {
        string raise = RefusalStatements.RaiseError(sqlState, message);
        responses.ExpectRefusal(state.NextRequestNumber, extended: !isQuery, sqlState, message);
        output.ResetWrittenCount();
        if (tracker is not null && !isQuery)
        {
            tracker.Record(new Request(RequestKind.Parse, string.Empty));
            tracker.Record(new Request(RequestKind.Bind, string.Empty, string.Empty, []));
            tracker.Record(new Request(RequestKind.Execute, string.Empty));
        }
        else
        {
            Record(isQuery, string.Empty);
        }

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

        await destination.WriteAsync(output.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Records a Query or a Parse of <paramref name="statement"/> for the column tracker.</summary>
    private void Record(bool isQuery, string? statement) =>
        tracker?.Record(isQuery ? new Request(RequestKind.Query, string.Empty) : new Request(RequestKind.Parse, statement ?? string.Empty));

    /// <summary>Records Bind, Describe, Execute, Close, Sync and FunctionCall for the column tracker, then forwards them as they are.</summary>
    private async ValueTask TrackAsync(byte code, ReadOnlySequence<byte> frame, Stream destination, CancellationToken cancellationToken)
    {
        ReadOnlySequence<byte> body = frame.Slice(MessageHeader.Size);
        switch ((FrontendMessageCode)code)
        {
            case FrontendMessageCode.Bind when ExtendedMessages.TryReadBind(body, out string portal, out string statement, out short[] formats):
                tracker!.Record(new Request(RequestKind.Bind, portal, statement, formats));
                break;
            case FrontendMessageCode.Describe when ExtendedMessages.TryReadTarget(body, out byte target, out string name):
                tracker!.Record(new Request(target == (byte)'S' ? RequestKind.DescribeStatement : RequestKind.DescribePortal, name));
                break;
            case FrontendMessageCode.Close when ExtendedMessages.TryReadTarget(body, out byte target, out string name):
                tracker!.Record(new Request(target == (byte)'S' ? RequestKind.CloseStatement : RequestKind.ClosePortal, name));
                break;
            case FrontendMessageCode.Execute when ExtendedMessages.TryReadExecute(body, out string portal):
                tracker!.Record(new Request(RequestKind.Execute, portal));
                break;
            case FrontendMessageCode.Sync:
                tracker!.Record(new Request(RequestKind.Sync, string.Empty));
                break;
            case FrontendMessageCode.FunctionCall:
                tracker!.Record(new Request(RequestKind.Query, string.Empty));
                break;
        }

        await ForwardAsync(frame, destination, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask ForwardAsync(ReadOnlySequence<byte> frame, Stream destination, CancellationToken cancellationToken)
    {
        foreach (ReadOnlyMemory<byte> segment in frame)
        {
            await destination.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }
    }
}

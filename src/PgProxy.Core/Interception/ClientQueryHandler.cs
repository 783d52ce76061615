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
    private readonly QueryFrameWriter writer = new(state, context, responses);
    private readonly InterceptorRunner<IQueryInterceptor, QueryMessage, QueryDecision> runner = new(InterceptorKinds.Query, context);

    public bool Wants(byte code) => code is (byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse;

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        bool isQuery = code == (byte)FrontendMessageCode.Query;

        string kind = isQuery ? "query" : "parse";
        long bodyLength = frame.Length - MessageHeader.Size;
        if (bodyLength > interceptors.MaxInterceptedSize)
        {
            // Decoding would cost several times the message (UTF-16 text, a rewrite, its encoding): not for one this large.
            await OversizedAsync(isQuery, kind, bodyLength, frame, next, cancellationToken).ConfigureAwait(false);
            return;
        }

        QueryMessage? query = writer.Decode(isQuery, frame.Slice(MessageHeader.Size), out ParseMessage? parse);
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
                timer?.NoteRefusal(interceptor.Name, QueryFrameWriter.TextOf(isQuery, frame));
                context.Metrics?.Refused(context.InstanceName, interceptor.Name);
                await writer.RefuseAsync(isQuery, decision.RefusalSqlState!, decision.RefusalMessage!, next, cancellationToken).ConfigureAwait(false);
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
        await writer.WriteTextAsync(isQuery, parse, query.Text, next, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask OversizedAsync(bool isQuery, string kind, long bodyLength, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        long limit = interceptors.MaxInterceptedSize;
        if (interceptors.OversizedPolicy == InterceptorFailurePolicy.Refuse)
        {
            InterceptLog.OversizedRefused(context.Logger, context.SessionId, kind, bodyLength, limit);
            string message = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{kind} of {bodyLength} bytes exceeds limits.max-intercepted-size ({limit} bytes)");
            return writer.RefuseAsync(isQuery, SqlStates.ProgramLimitExceeded, message, next, cancellationToken);
        }

        InterceptLog.OversizedPassed(context.Logger, context.SessionId, kind, bodyLength, limit);
        return next.WriteAsync(frame, cancellationToken);
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
}

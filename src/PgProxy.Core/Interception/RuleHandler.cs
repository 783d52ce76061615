using System.Buffers;
using System.Net;
using PgProxy.Abstractions;
using PgProxy.Core.Configuration;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Interception;

/// <summary>
/// The rules' stage, first toward the server: each Query and Parse is decided by the instance's rules in force now (so
/// a reload reaches open sessions at their next statement), and goes on unchanged, rewritten, or refused. Query
/// interceptors after it see what the rules left. While the instance has no rules it wants no frame, so the pump
/// forwards everything without decoding it.
/// </summary>
internal sealed class RuleHandler(LiveRules rules, ServerProtocolState state, SessionContext context, ServerResponseHandler diversion, StatementTimer? timer) : IFrameHandler
{
    private readonly QueryFrameWriter writer = new(state, context, diversion);
    private readonly IPAddress? client = (context.ClientAddress as IPEndPoint)?.Address;

    public bool Wants(byte code) =>
        code is (byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse && !rules.Current.IsEmpty;

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        bool isQuery = code == (byte)FrontendMessageCode.Query;
        QueryMessage? query = writer.Decode(isQuery, frame.Slice(MessageHeader.Size), out ParseMessage? parse);
        if (query is null)
        {
            await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        var subject = new RuleSubject(context.User, context.Database, context.ApplicationName, client);
        RuleDecision decision = rules.Current.Evaluate(query.Text, subject, isQuery ? QueryProtocol.Simple : QueryProtocol.Extended, context.Logger, context.SessionId);
        switch (decision.Outcome)
        {
            case RuleOutcome.Rewritten:
                string by = AppliedRules(decision);
                timer?.NoteRewrite(by);
                foreach (RuleHit hit in decision.HitArray)
                {
                    if (hit.Kind == RuleHitKind.Applied)
                    {
                        context.Metrics?.Rewritten(context.InstanceName, hit.Rule.Name);
                    }
                }

                await writer.WriteTextAsync(isQuery, parse, decision.Text!, next, cancellationToken).ConfigureAwait(false);
                return;
            case RuleOutcome.Refused:
                RuleRefusal refusal = decision.Refusal!;
                string refusedBy = RefusingRule(decision);
                context.Metrics?.Refused(context.InstanceName, refusedBy);
                if (decision.RefusesWholeMessage)
                {
                    timer?.NoteRefusal(refusedBy, QueryFrameWriter.TextOf(isQuery, frame));
                    await writer.RefuseAsync(isQuery, refusal.SqlState, refusal.Message, next, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    // Only some statements of a simple Query: the others run, the refused one raises in its place.
                    timer?.NoteRewrite(refusedBy);
                    await writer.RefuseStatementAsync(decision.Text!, refusal.SqlState, refusal.Message, next, cancellationToken).ConfigureAwait(false);
                }

                return;
            default:
                await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                return;
        }
    }

    private static string AppliedRules(RuleDecision decision)
    {
        string? names = null;
        foreach (RuleHit hit in decision.HitArray)
        {
            if (hit.Kind == RuleHitKind.Applied)
            {
                names = names is null ? hit.Rule.Name : $"{names},{hit.Rule.Name}";
            }
        }

        return names ?? "rules";
    }

    private static string RefusingRule(RuleDecision decision)
    {
        foreach (RuleHit hit in decision.HitArray)
        {
            if (hit.Kind == RuleHitKind.Applied && hit.Refusal is not null)
            {
                return hit.Rule.Name;
            }
        }

        return "rules";
    }
}

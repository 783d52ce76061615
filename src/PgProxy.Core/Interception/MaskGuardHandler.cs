using System.Buffers;
using System.Net;
using System.Text;
using PgProxy.Abstractions;
using PgProxy.Core.Masks;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Interception;

/// <summary>
/// The masks' stage toward the server, last before it, so that it judges the text the server will run (after rules and
/// plugins): before each Query or Parse it makes sure the database's <see cref="MaskCatalog"/> is read and current (a
/// metadata query on the session's own connection, between the client's statements), then refuses with 42501 each
/// statement that computes over a masked column or copies a masked table out, as the masks that apply to the session
/// say. DDL marks the catalog stale, so the statement after it sees what it created. While the instance has no masks it
/// wants no frame.
/// </summary>
internal sealed class MaskGuardHandler(LiveRules rules, ServerProtocolState state, SessionContext context, ServerResponseHandler diversion, StatementTimer? timer) : IFrameHandler
{
    private const string InterceptorName = "masks";

    private readonly QueryFrameWriter writer = new(state, context, diversion);
    private readonly MaskSubjects subjects = new(context);

    public bool Wants(byte code) =>
        code is (byte)FrontendMessageCode.Query or (byte)FrontendMessageCode.Parse && !rules.Current.Masks.IsEmpty;

    public async ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        MaskSet masks = rules.Current.Masks;
        bool isQuery = code == (byte)FrontendMessageCode.Query;
        bool[] applying = subjects.Applying(masks, out bool any);
        QueryMessage? query = any ? writer.Decode(isQuery, frame.Slice(MessageHeader.Size), out _) : null;
        if (query is null)
        {
            await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        // A session that began before its instance had masks starts keeping its statements' columns now, so that what
        // it prepares from here on is masked on every execution.
        state.StartTrackingStatements();
        MessageFacts facts = masks.FactsOf(query.Text);
        MaskCatalog catalog = await CatalogAsync(masks, facts, applying, cancellationToken).ConfigureAwait(false);
        MaskCheckOutcome outcome = facts.LastOutcome is { } known && known.IsFor(catalog, applying) ? known : Check(facts, catalog, masks, applying);
        facts.LastOutcome = outcome;
        string kind = isQuery ? "query" : "parse";
        string?[]? raising = null;
        MaskRefusal? first = null;
        int refused = 0;
        for (int i = 0; i < outcome.Refusals.Length; i++)
        {
            if (outcome.Refusals[i] is not { } refusal)
            {
                continue;
            }

            Mask mask = refusal.Mask;
            mask.Counters.CountMatched();
            string statementText = facts.Spans[i].TextOf(query.Text);
            if (mask.IsLogOnly)
            {
                mask.Counters.CountLogOnlyHit();
                InterceptLog.MaskLogOnlyRefusal(context.Logger, context.SessionId, kind, mask.Name, refusal.Message, statementText);
                continue;
            }

            mask.Counters.CountApplied();
            mask.Counters.CountRefusal();
            context.Metrics?.Refused(context.InstanceName, mask.Name);
            InterceptLog.Refused(context.Logger, context.SessionId, kind, mask.DisplayName, MaskRefusals.SqlState, refusal.Message, statementText);
            first ??= refusal;
            refused++;
            (raising ??= new string?[outcome.Refusals.Length])[i] = RefusalStatements.RaiseError(MaskRefusals.SqlState, refusal.Message);
        }

        if (outcome.HasDdl)
        {
            // What the DDL creates or changes is read before the next statement: that is the one that may use it.
            catalog.MarkStale();
        }

        if (first is not { } refusing)
        {
            await next.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (refused == facts.Statements.Length)
        {
            timer?.NoteRefusal(refusing.Mask.Name, QueryFrameWriter.TextOf(isQuery, frame));
            await writer.RefuseAsync(isQuery, MaskRefusals.SqlState, refusing.Message, next, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Only some statements of a simple Query: the others run, each refused one raises in its place.
        var text = new StringBuilder(query.Text.Length + 128);
        int position = 0;
        for (int i = 0; i < facts.Spans.Length; i++)
        {
            if (raising![i] is { } raise)
            {
                text.Append(query.Text, position, facts.Spans[i].Start - position).Append(raise);
                position = facts.Spans[i].End;
            }
        }

        text.Append(query.Text, position, query.Text.Length - position);
        timer?.NoteRewrite(refusing.Mask.Name);
        await writer.RefuseStatementAsync(text.ToString(), MaskRefusals.SqlState, refusing.Message, next, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The database's catalog, read now when there is none yet, when it is stale, or when the statement names a relation
    /// it does not have (created since). A metadata query can run only between the client's statements and outside a
    /// failed transaction; when it cannot, the last catalog serves (the backend stage refuses rows of relations it does
    /// not know, so nothing unmasked leaves either way).
    /// </summary>
    private async ValueTask<MaskCatalog> CatalogAsync(MaskSet masks, MessageFacts facts, bool[] applying, CancellationToken cancellationToken)
    {
        string database = context.Database;
        MaskCatalog? current = masks.CatalogOf(database);
        bool read = current is null || current.IsStale;

        // A text checked under this catalog already had its names looked for.
        if (!read && facts.LastOutcome?.IsFor(current!, applying) != true)
        {
            foreach (MaskStatementFacts statement in facts.Statements)
            {
                foreach (NamedRelation relation in statement.Relations)
                {
                    read |= current!.ShouldLookFor(relation.Schema, relation.Name);
                }
            }
        }

        if (!read || state.ExtendedBatchOpen || state.TransactionStatus == Protocol.TransactionStatus.Failed)
        {
            return current ?? MaskCatalog.Unread;
        }

        context.CurrentInterceptor = InterceptorName;
        try
        {
            MaskCatalog catalog = await MaskCatalogReader.ReadAsync(masks.Masks, context.QueryUpstreamAsync, context.Logger, context.SessionId, cancellationToken).ConfigureAwait(false);
            masks.Store(database, catalog);
            return catalog;
        }
        catch (UpstreamQueryException e)
        {
            InterceptLog.MaskCatalogFailed(context.Logger, context.SessionId, e.Message);
            return current ?? MaskCatalog.Unread;
        }
        finally
        {
            context.CurrentInterceptor = null;
        }
    }

    private static MaskCheckOutcome Check(MessageFacts facts, MaskCatalog catalog, MaskSet masks, bool[] applying)
    {
        // Without a catalog (it could not be read yet) the configuration's names stand in: the checks still refuse.
        IMaskedRelations relations = catalog.RelationCount > 0 ? catalog : new ConfiguredMaskedRelations(masks.Masks);
        var refusals = new MaskRefusal?[facts.Statements.Length];
        bool ddl = false;
        for (int i = 0; i < refusals.Length; i++)
        {
            MaskStatementFacts statement = facts.Statements[i];
            ddl |= (statement.Kinds & Configuration.StatementKinds.Ddl) != 0;
            refusals[i] = MaskStatementCheck.Check(statement, relations, applying);
        }

        return new MaskCheckOutcome(catalog, applying, refusals, ddl);
    }
}

/// <summary>The SQLSTATE of every refusal by a mask: insufficient_privilege, as PostgreSQL's own column privileges refuse.</summary>
internal static class MaskRefusals
{
    public const string SqlState = "42501";
}

/// <summary>
/// Which masks apply to one session (<c>unless</c>), worked out again only when the mask set changes (a reload), so
/// that a statement or a row costs a comparison.
/// </summary>
internal sealed class MaskSubjects(SessionContext context)
{
    private readonly IPAddress? client = (context.ClientAddress as IPEndPoint)?.Address;
    private MaskSet? set;
    private string? applicationName;
    private bool[] applying = [];
    private bool any;

    public bool[] Applying(MaskSet masks, out bool anyApplies)
    {
        string? name = masks.UsesSubject ? context.ApplicationName : null;
        if (!ReferenceEquals(masks, set) || !string.Equals(name, applicationName, StringComparison.Ordinal))
        {
            applying = masks.Applying(new RuleSubject(context.User, context.Database, context.ApplicationName, client));
            any = Array.IndexOf(applying, true) >= 0;
            set = masks;
            applicationName = name;
        }

        anyApplies = any;
        return applying;
    }
}

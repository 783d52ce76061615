using System.Buffers;
using System.Text;
using PgProxy.Core.Masks;
using PgProxy.Core.Relay;
using PgProxy.Core.Rules;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Interception;

/// <summary>
/// The masks' stage from the server, right after the diversion of the proxy's own metadata answers: it rewrites the
/// values of masked columns in DataRows, text and binary formats alike, with each row's framing recomputed. A result
/// column is recognised by its RowDescription's table OID and attribute number (so an alias does not escape it), looked
/// up in the database's <see cref="MaskCatalog"/>; the columns of a row come from the statement tracker, so a statement
/// described once is masked on every execution. Rows of a relation the catalog has not seen, of a view column it cannot
/// trace, or of a column whose type the mask cannot keep are never released: the result is refused with 42501 and the
/// catalog read again before the next statement. A result with no masked column costs a comparison per row, no copy.
/// </summary>
internal sealed class MaskHandler(LiveRules rules, SessionContext context, ServerProtocolState state) : IFrameHandler
{
    private const byte DataRowCode = (byte)BackendMessageCode.DataRow;

    // Text types whose binary format is their text: the only ones a mask other than null keeps, when the column has no source to look up.
    private static readonly uint[] TextTypeOids = [25, 1043, 1042, 19];

    private readonly MaskSubjects subjects = new(context);
    private readonly MaskedRowBuffer row = new();

    // The plan of the result being received, and what it was made from.
    private FieldDescription[]? planColumns;
    private MaskSet? planSet;
    private MaskCatalog? planCatalog;
    private int planCatalogVersion;
    private ResultPlan plan = ResultPlan.Inactive;

    // Without a tracker (the session began before its instance had masks, and has not sent a statement since): the last
    // RowDescription of this response group.
    private FieldDescription[]? described;
    private bool resultCounted;
    private bool suppressing;

    public bool Wants(byte code)
    {
        if (suppressing)
        {
            return true;
        }

        MaskSet masks = rules.Current.Masks;
        if (masks.IsEmpty)
        {
            return false;
        }

        return code switch
        {
            DataRowCode => PlanFor(masks).IsActive,
            (byte)BackendMessageCode.RowDescription => state.Statements is null,
            (byte)BackendMessageCode.CommandComplete or (byte)BackendMessageCode.PortalSuspended or (byte)BackendMessageCode.EmptyQueryResponse
                or (byte)BackendMessageCode.ErrorResponse or (byte)BackendMessageCode.ReadyForQuery => resultCounted || described is not null,
            _ => false,
        };
    }

    // Not async: every path ends in at most one write, whose task is returned as it is, so that a row costs no state machine.
    public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        if (suppressing)
        {
            // After a refused result the client has its error: nothing more of the response group reaches it but what
            // the protocol needs (its end, notices, setting changes, and a COPY FROM STDIN the server waits on).
            if (code == (byte)BackendMessageCode.ReadyForQuery)
            {
                suppressing = false;
                EndOfResult(endOfGroup: true);
                return next.WriteAsync(frame, cancellationToken);
            }

            return code is (byte)BackendMessageCode.NoticeResponse or (byte)BackendMessageCode.ParameterStatus
                or (byte)BackendMessageCode.NotificationResponse or (byte)BackendMessageCode.CopyInResponse or (byte)BackendMessageCode.CopyBothResponse
                ? next.WriteAsync(frame, cancellationToken)
                : ValueTask.CompletedTask;
        }

        switch (code)
        {
            case DataRowCode:
                return MaskRowAsync(frame, next, cancellationToken);
            case (byte)BackendMessageCode.RowDescription:
                described = Describe(frame.Slice(MessageHeader.Size));
                break;
            default:
                EndOfResult(endOfGroup: code == (byte)BackendMessageCode.ReadyForQuery);
                break;
        }

        return next.WriteAsync(frame, cancellationToken);
    }

    /// <summary>The columns of a RowDescription; null when it cannot be read (its rows are then refused as unknown).</summary>
    private FieldDescription[]? Describe(ReadOnlySequence<byte> body)
    {
        try
        {
            return RowDescriptionMessage.TryRead(body, context.ClientEncoding, out FieldDescription[] columns) ? columns : null;
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private void EndOfResult(bool endOfGroup)
    {
        resultCounted = false;
        row.Reset(); // gives back what a huge row made it hold
        if (endOfGroup || state.Statements is null)
        {
            described = null;
        }
    }

    private ValueTask MaskRowAsync(ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken)
    {
        ResultPlan current = plan;
        if (!resultCounted)
        {
            resultCounted = true;
            Count(current);
        }

        if (current.Refusal is { } refusal)
        {
            suppressing = true;
            byte[] error = ErrorResponseWriter.Build(ErrorSeverity.Error, MaskRefusals.SqlState, refusal.Message);
            return next.WriteAsync(new ReadOnlySequence<byte>(error), cancellationToken);
        }

        if (!current.Rewrites)
        {
            return next.WriteAsync(frame, cancellationToken);
        }

        if (!TryWriteMaskedRow(frame, current.Actions))
        {
            // A row that does not match its description cannot be masked column by column: it is not released.
            suppressing = true;
            byte[] error = ErrorResponseWriter.Build(ErrorSeverity.Error, MaskRefusals.SqlState, "refused by PgProxy masks: a row that does not match its description");
            return next.WriteAsync(new ReadOnlySequence<byte>(error), cancellationToken);
        }

        return next.WriteAsync(new ReadOnlySequence<byte>(row.Written), cancellationToken);
    }

    /// <summary>
    /// Writes the row with its masked values into <see cref="row"/>. A row that straddles two of the receive buffer's
    /// segments (one per read of 64 KiB or so) is first copied whole into a pooled buffer, so the writer walks one span.
    /// </summary>
    private bool TryWriteMaskedRow(in ReadOnlySequence<byte> frame, Mask?[] actions)
    {
        Encoding encoding = context.ClientEncoding;
        if (frame.IsSingleSegment)
        {
            return MaskedRowWriter.TryWrite(frame.FirstSpan, actions, encoding, row);
        }

        int length = checked((int)frame.Length);
        byte[] whole = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            frame.CopyTo(whole);
            return MaskedRowWriter.TryWrite(whole.AsSpan(0, length), actions, encoding, row);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(whole);
        }
    }

    /// <summary>Counts, logs and meters a result once, at its first row: per mask that covers a column of it.</summary>
    private void Count(ResultPlan current)
    {
        if (current.Refusal is { } refusal)
        {
            Mask mask = refusal.Mask;
            mask.Counters.CountMatched();
            mask.Counters.CountApplied();
            mask.Counters.CountRefusal();
            context.Metrics?.Refused(context.InstanceName, mask.Name);
            InterceptLog.MaskResultRefused(context.Logger, context.SessionId, mask.DisplayName, refusal.Message);
            return;
        }

        foreach ((Mask mask, string column) in current.Enforced)
        {
            mask.Counters.CountMatched();
            mask.Counters.CountApplied();
            context.Metrics?.Masked(context.InstanceName, mask.Name);
            InterceptLog.MaskApplied(context.Logger, context.SessionId, mask.Name, column);
        }

        foreach ((Mask mask, string column, string? wouldRefuse) in current.LogOnly)
        {
            mask.Counters.CountMatched();
            mask.Counters.CountLogOnlyHit();
            if (wouldRefuse is not null)
            {
                InterceptLog.MaskLogOnlyResultRefusal(context.Logger, context.SessionId, mask.Name, wouldRefuse);
            }
            else
            {
                InterceptLog.MaskLogOnly(context.Logger, context.SessionId, mask.Name, column);
            }
        }
    }

    /// <summary>The plan of the row arriving now: made once per result (per description), then a comparison of references.</summary>
    private ResultPlan PlanFor(MaskSet masks)
    {
        bool[] applying = subjects.Applying(masks, out bool any);
        if (!any)
        {
            return ResultPlan.Inactive;
        }

        FieldDescription[]? columns = state.Statements is { } tracker ? tracker.ColumnsOfRow() : described;
        int catalogVersion = masks.CatalogVersion;
        bool sameResult = ReferenceEquals(columns, planColumns) && ReferenceEquals(masks, planSet);
        if (sameResult && catalogVersion == planCatalogVersion)
        {
            return plan; // the next row of the same result: no lookup
        }

        MaskCatalog catalog = masks.CatalogOf(context.Database) ?? MaskCatalog.Unread;
        planCatalogVersion = catalogVersion;
        if (sameResult && ReferenceEquals(catalog, planCatalog))
        {
            return plan;
        }

        planColumns = columns;
        planSet = masks;
        planCatalog = catalog;
        // No columns for a row: a description the tracker could not read (it keeps none), or none seen. Unknown either way.
        plan = columns is null or { Length: 0 } ? Unknown(masks, applying) : ResultPlan.Of(columns, masks, catalog, applying);
        return plan;
    }

    /// <summary>Rows whose columns the proxy does not know (a statement described before this session tracked any): refused.</summary>
    private static ResultPlan Unknown(MaskSet masks, bool[] applying)
    {
        Mask mask = masks.Masks.First(candidate => applying[candidate.Index]);
        const string Reason = "refused by PgProxy masks: the columns of this result are unknown to the proxy (a statement prepared before masks were configured; prepare it again)";
        return mask.IsLogOnly
            ? new ResultPlan([], [], [(mask, "?", Reason)], null)
            : new ResultPlan([], [], [], new MaskRefusal(mask, Reason));
    }

    /// <summary>What to do with each column of a result: which mask rewrites it (null: none), and whether the whole result is refused.</summary>
    private sealed class ResultPlan(Mask?[] actions, (Mask Mask, string Column)[] enforced, (Mask Mask, string Column, string? WouldRefuse)[] logOnly, MaskRefusal? refusal)
    {
        public static ResultPlan Inactive { get; } = new([], [], [], null);

        public Mask?[] Actions => actions;

        public (Mask Mask, string Column)[] Enforced => enforced;

        public (Mask Mask, string Column, string? WouldRefuse)[] LogOnly => logOnly;

        public MaskRefusal? Refusal => refusal;

        public bool Rewrites => enforced.Length > 0;

        public bool IsActive => refusal is not null || enforced.Length > 0 || logOnly.Length > 0;

        public static ResultPlan Of(FieldDescription[] columns, MaskSet masks, MaskCatalog catalog, bool[] applying)
        {
            Mask?[]? rewriting = null;
            List<(Mask, string)>? enforced = null;
            List<(Mask, string, string?)>? logOnly = null;
            MaskRefusal? refusal = null;
            for (int i = 0; i < columns.Length; i++)
            {
                FieldDescription column = columns[i];
                (Mask Mask, string? Refusal)? action = ActionFor(column, masks, catalog, applying);
                if (action is not { } found)
                {
                    continue;
                }

                if (found.Mask.IsLogOnly)
                {
                    (logOnly ??= []).Add((found.Mask, column.Name, found.Refusal));
                }
                else if (found.Refusal is { } reason)
                {
                    refusal ??= new MaskRefusal(found.Mask, reason);
                }
                else
                {
                    (rewriting ??= new Mask?[columns.Length])[i] = found.Mask;
                    (enforced ??= []).Add((found.Mask, column.Name));
                }
            }

            return rewriting is null && logOnly is null && refusal is null
                ? Inactive
                : new ResultPlan(rewriting ?? [], enforced is null ? [] : [.. enforced], logOnly is null ? [] : [.. logOnly], refusal);
        }

        private static (Mask Mask, string? Refusal)? ActionFor(FieldDescription column, MaskSet masks, MaskCatalog catalog, bool[] applying)
        {
            if (column.TableOid != 0)
            {
                if (catalog.Relation(column.TableOid) is not { } relation)
                {
                    // A relation the catalog has not seen (created, or dropped and created again, since it was read): its
                    // rows are not released; the catalog is read again before the next statement.
                    catalog.MarkStale();
                    Mask? first = masks.Masks.FirstOrDefault(mask => applying[mask.Index] && !mask.IsLogOnly) ?? masks.Masks.FirstOrDefault(mask => applying[mask.Index]);
                    return first is null ? null : (first, $"refused by PgProxy masks: relation OID {column.TableOid} is not yet known to the proxy's masks (it was created since they read the catalog); run the statement again");
                }

                return relation.Columns.TryGetValue(column.ColumnNumber, out ColumnVerdict? verdict) && applying[verdict.Mask.Index]
                    ? (verdict.Mask, verdict.Refusal)
                    : null;
            }

            // No source: a computation the masks let pass, or a function's result. A *.column mask still covers it by name.
            foreach (Mask mask in masks.OutputNameMasks)
            {
                if (applying[mask.Index] && mask.Config.Columns.Any(named => named.IsOutputName && string.Equals(named.Column, column.Name, StringComparison.Ordinal)))
                {
                    return mask.Config.With.KeepsEveryType || Array.IndexOf(TextTypeOids, column.TypeOid) >= 0
                        ? (mask, null)
                        : (mask, $"refused by PgProxy {mask.DisplayName}: its function {mask.Config.With} cannot keep the type (OID {column.TypeOid}) of result column {column.Name} (a configuration error at line {mask.Config.Line})");
                }
            }

            return null;
        }
    }
}

using System.Buffers;
using System.Text;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Server;

/// <summary>What the client asked of the server, as far as result columns go; recorded in the order it was sent.</summary>
internal enum RequestKind : byte
{
    /// <summary>A simple Query (or FunctionCall): everything up to its ReadyForQuery.</summary>
    Query,
    Parse,
    Bind,
    DescribeStatement,
    DescribePortal,
    Execute,
    CloseStatement,
    ClosePortal,
    Sync,
}

/// <summary>One request; <see cref="Name"/> is the statement or portal, <see cref="Statement"/> and <see cref="Formats"/> belong to Bind.</summary>
internal readonly record struct Request(RequestKind Kind, string Name, string? Statement = null, short[]? Formats = null);

/// <summary>
/// The server connection's prepared statements and portals with their row descriptions, so the columns of every
/// DataRow are known in both protocols. Fed by the pumps' observation only: the frontend records each request as it is
/// written to the server (the proxy's own messages included, so what is recorded is what the server received); the
/// backend pairs each response with the oldest request still waiting for it (the server answers in request order), and
/// learns as it goes: the RowDescription of a simple query, the description of a statement (kept across executions,
/// so a statement prepared and described once is known on its tenth Bind/Execute), the portal a Bind creates with the
/// result formats it asked for, what Close removes. After an ErrorResponse in an extended batch the server skips to
/// Sync, and so do the requests waiting here. The maps hold only what the client created; only the backend reads them.
/// </summary>
internal sealed class StatementTracker
{
    private readonly PumpQueue<Request> requests = new();
    private readonly Dictionary<string, FieldDescription[]> statements = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FieldDescription[]> portals = new(StringComparer.Ordinal);
    private FieldDescription[]? simpleColumns;
    private bool skippingToSync;

    /// <summary>Frontend: records a request, before it is forwarded.</summary>
    public void Record(Request request) => requests.Enqueue(request);

    /// <summary>
    /// Whether the pumps must see a frame of this type whole for the tracker: the frontend's Parse, Bind, Describe,
    /// Execute and Close (names and formats), and the backend's RowDescription (its columns).
    /// </summary>
    public static bool NeedsBody(bool frontend, byte code) => frontend
        ? (FrontendMessageCode)code is FrontendMessageCode.Parse or FrontendMessageCode.Bind or FrontendMessageCode.Describe
            or FrontendMessageCode.Execute or FrontendMessageCode.Close
        : (BackendMessageCode)code == BackendMessageCode.RowDescription;

    /// <summary>Frontend pump: a message written to the server (whole when <see cref="NeedsBody"/> says so).</summary>
    public void OnFrontendMessage(byte code, in ReadOnlySequence<byte> body)
    {
        switch ((FrontendMessageCode)code)
        {
            case FrontendMessageCode.Query:
            case FrontendMessageCode.FunctionCall:
                Record(new Request(RequestKind.Query, string.Empty));
                break;
            case FrontendMessageCode.Sync:
                Record(new Request(RequestKind.Sync, string.Empty));
                break;
            case FrontendMessageCode.Parse when ExtendedMessages.TryReadParseName(body, out string statement):
                Record(new Request(RequestKind.Parse, statement));
                break;
            case FrontendMessageCode.Bind when ExtendedMessages.TryReadBind(body, out string portal, out string statement, out short[] formats):
                Record(new Request(RequestKind.Bind, portal, statement, formats));
                break;
            case FrontendMessageCode.Describe when ExtendedMessages.TryReadTarget(body, out byte target, out string name):
                Record(new Request(target == (byte)'S' ? RequestKind.DescribeStatement : RequestKind.DescribePortal, name));
                break;
            case FrontendMessageCode.Close when ExtendedMessages.TryReadTarget(body, out byte target, out string name):
                Record(new Request(target == (byte)'S' ? RequestKind.CloseStatement : RequestKind.ClosePortal, name));
                break;
            case FrontendMessageCode.Execute when ExtendedMessages.TryReadExecute(body, out string portal):
                Record(new Request(RequestKind.Execute, portal));
                break;
        }
    }

    /// <summary>Backend pump: a message the server sent (a RowDescription whole); names are decoded in <paramref name="encoding"/>.</summary>
    public void OnBackendMessage(byte code, in ReadOnlySequence<byte> body, Encoding encoding)
    {
        switch ((BackendMessageCode)code)
        {
            case BackendMessageCode.ParseComplete:
                OnParseComplete();
                break;
            case BackendMessageCode.BindComplete:
                OnBindComplete();
                break;
            case BackendMessageCode.CloseComplete:
                OnCloseComplete();
                break;
            case BackendMessageCode.RowDescription:
                OnRowDescription(TryReadColumns(body, encoding, out FieldDescription[] columns) ? columns : []);
                break;
            case BackendMessageCode.NoData:
                OnRowDescription([]);
                break;
            case BackendMessageCode.CommandComplete:
            case BackendMessageCode.EmptyQueryResponse:
            case BackendMessageCode.PortalSuspended:
                OnCompletion();
                break;
            case BackendMessageCode.ErrorResponse:
                OnError();
                break;
            case BackendMessageCode.ReadyForQuery:
                OnReadyForQuery();
                break;
        }
    }

    private static bool TryReadColumns(in ReadOnlySequence<byte> body, Encoding encoding, out FieldDescription[] columns)
    {
        try
        {
            return RowDescriptionMessage.TryRead(body, encoding, out columns);
        }
        catch (DecoderFallbackException)
        {
            columns = [];
            return false;
        }
    }

    /// <summary>Statements and portals known now (for tests and diagnostics).</summary>
    public int Known => statements.Count + portals.Count;

    public void OnParseComplete()
    {
        if (TakeIf(RequestKind.Parse, out Request parse))
        {
            statements.Remove(parse.Name);
        }
    }

    public void OnBindComplete()
    {
        if (!TakeIf(RequestKind.Bind, out Request bind))
        {
            return;
        }

        if (statements.TryGetValue(bind.Statement!, out FieldDescription[]? described))
        {
            portals[bind.Name] = WithFormats(described, bind.Formats ?? []);
        }
        else
        {
            portals.Remove(bind.Name);
        }
    }

    public void OnCloseComplete()
    {
        if (TakeIf(RequestKind.CloseStatement, out Request statement))
        {
            statements.Remove(statement.Name);
        }
        else if (TakeIf(RequestKind.ClosePortal, out Request portal))
        {
            portals.Remove(portal.Name);
        }
    }

    /// <summary>A RowDescription (or, with no columns, NoData): a simple query's next rows, or the answer to a Describe.</summary>
    public void OnRowDescription(FieldDescription[] columns)
    {
        SkipIfNeeded();
        if (!requests.TryPeek(out Request head))
        {
            return;
        }

        switch (head.Kind)
        {
            case RequestKind.Query:
                simpleColumns = columns;
                break;
            case RequestKind.DescribeStatement:
                requests.TryDequeue(out _);
                statements[head.Name] = columns;
                break;
            case RequestKind.DescribePortal:
                requests.TryDequeue(out _);
                portals[head.Name] = columns;
                break;
        }
    }

    /// <summary>The columns of a DataRow arriving now, or null when unknown.</summary>
    public FieldDescription[]? ColumnsOfRow()
    {
        SkipIfNeeded();
        if (!requests.TryPeek(out Request head))
        {
            return null;
        }

        return head.Kind switch
        {
            RequestKind.Query => simpleColumns,
            RequestKind.Execute => portals.GetValueOrDefault(head.Name),
            _ => null,
        };
    }

    /// <summary>CommandComplete, EmptyQueryResponse or PortalSuspended: an Execute is answered, or a simple query's statement ends.</summary>
    public void OnCompletion()
    {
        SkipIfNeeded();
        if (!requests.TryPeek(out Request head))
        {
            return;
        }

        if (head.Kind == RequestKind.Query)
        {
            simpleColumns = null;
        }
        else if (head.Kind == RequestKind.Execute)
        {
            requests.TryDequeue(out _);
        }
    }

    /// <summary>An ErrorResponse: in an extended batch the server skips everything up to the next Sync.</summary>
    public void OnError()
    {
        SkipIfNeeded();
        if (requests.TryPeek(out Request head) && head.Kind is RequestKind.Query or RequestKind.Sync)
        {
            simpleColumns = null;
            return;
        }

        skippingToSync = true;
        SkipIfNeeded();
    }

    /// <summary>ReadyForQuery: answers the oldest Sync or Query, and everything before it.</summary>
    public void OnReadyForQuery()
    {
        skippingToSync = false;
        simpleColumns = null;
        while (requests.TryDequeue(out Request request))
        {
            if (request.Kind == RequestKind.Query)
            {
                // A simple query destroys the unnamed statement and portal.
                statements.Remove(string.Empty);
                portals.Remove(string.Empty);
                return;
            }

            if (request.Kind == RequestKind.Sync)
            {
                return;
            }
        }
    }

    private static FieldDescription[] WithFormats(FieldDescription[] columns, short[] formats)
    {
        var result = new FieldDescription[columns.Length];
        for (int i = 0; i < columns.Length; i++)
        {
            short format = formats.Length switch
            {
                0 => 0,
                1 => formats[0],
                _ => i < formats.Length ? formats[i] : (short)0,
            };
            result[i] = columns[i] with { FormatCode = format };
        }

        return result;
    }

    private bool TakeIf(RequestKind kind, out Request request)
    {
        SkipIfNeeded();
        if (requests.TryPeek(out request) && request.Kind == kind)
        {
            requests.TryDequeue(out _);
            return true;
        }

        return false;
    }

    /// <summary>Drops the requests the server skipped after an error, up to (not including) the Sync that ends them.</summary>
    private void SkipIfNeeded()
    {
        while (skippingToSync && requests.TryPeek(out Request head) && head.Kind is not (RequestKind.Sync or RequestKind.Query))
        {
            requests.TryDequeue(out _);
        }
    }
}

using System.Collections.Concurrent;
using PgProxy.Abstractions;

namespace PgProxy.Core.Interception;

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
/// Knows the columns of every DataRow, in both protocols. The frontend records each request before forwarding it; the
/// backend pairs each response with the oldest request still waiting for it (the server answers in request order), and
/// learns as it goes: the RowDescription of a simple query, the description of a statement (kept across executions,
/// so a statement prepared and described once is known on its tenth Bind/Execute), the portal a Bind creates with the
/// result formats it asked for, what Close removes. After an ErrorResponse in an extended batch the server skips to
/// Sync, and so do the requests waiting here. The maps hold only what the client created; only the backend reads them.
/// </summary>
internal sealed class ResultColumnTracker
{
    private readonly ConcurrentQueue<Request> requests = new();
    private readonly Dictionary<string, ResponseColumn[]> statements = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ResponseColumn[]> portals = new(StringComparer.Ordinal);
    private ResponseColumn[]? simpleColumns;
    private bool skippingToSync;

    /// <summary>Frontend: records a request, before it is forwarded.</summary>
    public void Record(Request request) => requests.Enqueue(request);

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

        if (statements.TryGetValue(bind.Statement!, out ResponseColumn[]? described))
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
    public void OnRowDescription(ResponseColumn[] columns)
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
    public ResponseColumn[]? ColumnsOfRow()
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

    private static ResponseColumn[] WithFormats(ResponseColumn[] columns, short[] formats)
    {
        var result = new ResponseColumn[columns.Length];
        for (int i = 0; i < columns.Length; i++)
        {
            short format = formats.Length switch
            {
                0 => 0,
                1 => formats[0],
                _ => i < formats.Length ? formats[i] : (short)0,
            };
            result[i] = columns[i].WithFormat(format);
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

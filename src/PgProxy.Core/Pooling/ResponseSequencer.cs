namespace PgProxy.Core.Pooling;

/// <summary>What the backend does with the response a request is owed.</summary>
internal enum ResponseAction : byte
{
    /// <summary>The client's own request: its responses go to the client.</summary>
    Forward,

    /// <summary>A request of PgProxy's (a Parse or Close it put in): its completion message is dropped.</summary>
    Drop,

    /// <summary>A stand-in request: one message of its response is replaced by the one the client is owed.</summary>
    Replace,
}

/// <summary>What the backend handler does with one server message, as <see cref="ResponseSequencer.Decide"/> says.</summary>
internal readonly record struct ResponseDecision(ResponseAction Action, byte[]? Replacement, string? ServerName, string? ClientName)
{
    public static ResponseDecision PassOn => default;

    /// <summary>An ErrorResponse whose text names PgProxy's statement name where the client knows its own.</summary>
    public bool MapsError => Action == ResponseAction.Forward && ServerName is not null;
}

/// <summary>
/// The responses a linked server connection still owes, request by request, in the order the requests went out. The
/// frontend pump records every request it sends (<see cref="OnFrame"/> from the pump's one observation of each frame);
/// the backend pump consumes them as their completion messages arrive. PostgreSQL answers requests strictly in order and
/// skips extended-protocol messages after an error up to the next Sync, and this follows the same rules, so PgProxy can
/// put requests of its own on a connection (a Parse a client's statement needs there, a Close making room) and take
/// their answers out, and answer a client's request with a stand-in whose response is replaced.
/// </summary>
internal sealed class ResponseSequencer
{
    private Entry[] entries = new Entry[16];
    private int head;
    private int count;
    private bool skippingToSync; // the server reported an extended-protocol error: it ignores requests up to the Sync
    private Entry? next; // what the next request written is, when the frontend handler says so before writing it

    /// <summary>Taken by whoever reads or changes the entries and the statements they undo.</summary>
    public object Gate { get; } = new();

    /// <summary>What to do when a request fails or is skipped (a Parse that did not prepare its statement).</summary>
    public Action<StatementUndo>? Failed { get; set; }

    /// <summary>Requests whose responses have not all arrived.</summary>
    public int Pending
    {
        get
        {
            lock (Gate)
            {
                return count;
            }
        }
    }

    /// <summary>A new link: nothing is owed (the previous link ended with every request answered).</summary>
    public void Reset()
    {
        lock (Gate)
        {
            head = 0;
            count = 0;
            skippingToSync = false;
            next = null;
        }
    }

    /// <summary>
    /// Says what the next request written toward the server is; the frontend handler calls it just before writing it.
    /// </summary>
    public void NextIs(ResponseAction action, byte replacedCode = 0, byte[]? replacement = null, StatementUndo? undo = null, string? serverName = null, string? clientName = null)
    {
        lock (Gate)
        {
            next = new Entry(0, action, replacedCode, replacement, undo, serverName, clientName);
        }
    }

    /// <summary>Every frame either way, once, as the pump observes it.</summary>
    public void OnFrame(bool toServer, byte code)
    {
        lock (Gate)
        {
            if (toServer)
            {
                OnRequest(code);
            }
            else
            {
                OnResponse(code);
            }
        }
    }

    /// <summary>What the backend handler does with a server message of this type now. Peeks only: it may be asked again.</summary>
    public ResponseDecision Decide(byte code)
    {
        lock (Gate)
        {
            if (count == 0)
            {
                return ResponseDecision.PassOn;
            }

            ref Entry entry = ref entries[head];
            return entry.Action switch
            {
                ResponseAction.Drop when Completes(entry.Request, code) => new ResponseDecision(ResponseAction.Drop, null, null, null),
                ResponseAction.Replace when code == entry.ReplacedCode => new ResponseDecision(ResponseAction.Replace, entry.Replacement, null, null),
                _ when code == (byte)'E' && entry.ServerName is not null => new ResponseDecision(ResponseAction.Forward, null, entry.ServerName, entry.ClientName),
                _ => ResponseDecision.PassOn,
            };
        }
    }

    private void OnRequest(byte code)
    {
        if (!MakesRequest(code))
        {
            return;
        }

        Entry entry = next is { } said ? said with { Request = code } : new Entry(code, ResponseAction.Forward, 0, null, null, null, null);
        next = null;
        if (skippingToSync && code != (byte)'S')
        {
            // The server ignores it: it never answers, and whatever it was to prepare is not prepared.
            Fail(entry);
            return;
        }

        skippingToSync = false;
        if (count == entries.Length)
        {
            var grown = new Entry[entries.Length * 2];
            for (int i = 0; i < count; i++)
            {
                grown[i] = entries[(head + i) % entries.Length];
            }

            entries = grown;
            head = 0;
        }

        entries[(head + count) % entries.Length] = entry;
        count++;
    }

    private void OnResponse(byte code)
    {
        if (count == 0 || code is (byte)'N' or (byte)'S' or (byte)'A')
        {
            return; // notices, parameter reports and notifications come between responses
        }

        byte request = entries[head].Request;
        if (code == (byte)'E' && IsExtended(request))
        {
            Fail(Pop());
            while (count > 0 && entries[head].Request != (byte)'S')
            {
                Fail(Pop());
            }

            skippingToSync = count == 0;
            return;
        }

        if (code == (byte)'Z')
        {
            // Answers a Sync, Query or FunctionCall; anything before it was skipped (defensive: nothing should be).
            while (count > 0)
            {
                Entry popped = Pop();
                if (!IsExtended(popped.Request))
                {
                    return;
                }

                Fail(popped);
            }

            return;
        }

        if (Completes(request, code))
        {
            Pop();
        }
    }

    private Entry Pop()
    {
        Entry entry = entries[head];
        entries[head] = default;
        head = (head + 1) % entries.Length;
        count--;
        return entry;
    }

    private void Fail(in Entry entry)
    {
        if (entry.Undo is { } undo)
        {
            Failed?.Invoke(undo);
        }
    }

    /// <summary>Messages the server answers: the extended-protocol requests, Sync, Query and FunctionCall.</summary>
    private static bool MakesRequest(byte code) => code is (byte)'P' or (byte)'B' or (byte)'D' or (byte)'E' or (byte)'C' or (byte)'S' or (byte)'Q' or (byte)'F';

    private static bool IsExtended(byte request) => request is (byte)'P' or (byte)'B' or (byte)'D' or (byte)'E' or (byte)'C';

    /// <summary>Whether a server message of this type is the last of the response to <paramref name="request"/>.</summary>
    private static bool Completes(byte request, byte code) => request switch
    {
        (byte)'P' => code == (byte)'1',
        (byte)'B' => code == (byte)'2',
        (byte)'C' => code == (byte)'3',
        (byte)'D' => code is (byte)'T' or (byte)'n',
        (byte)'E' => code is (byte)'C' or (byte)'I' or (byte)'s',
        _ => code == (byte)'Z',
    };

    private readonly record struct Entry(byte Request, ResponseAction Action, byte ReplacedCode, byte[]? Replacement, StatementUndo? Undo, string? ServerName, string? ClientName);
}

/// <summary>What a Parse that failed (or was skipped) had recorded: a client's statement, and the server's copy of it.</summary>
internal sealed record StatementUndo(string? ClientName, PreparedShape Shape, bool PreparedOnServer);

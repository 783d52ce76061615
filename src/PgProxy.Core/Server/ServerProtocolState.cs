using System.Buffers;
using System.Text;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Server;

/// <summary>
/// What the relay knows of a server connection's protocol conversation, and nothing more: requests still unanswered,
/// the last transaction status, the server's BackendKeyData and the parameters it reported, and (when something needs
/// them: see <see cref="Statements"/>) its prepared statements and portals. Everything here is written
/// by the pumps as they observe frames (see <c>ForwardingPump.Observe</c>); each counter has one writer (its pump),
/// and readers use Volatile.
/// </summary>
internal sealed class ServerProtocolState
{
    // The start-up itself is answered by a ReadyForQuery, so it counts as the first request.
    private long requestsSent = 1;
    private long readyReceived;
    private long syncsSent;
    private long errorAt; // Environment.TickCount64 of the last ErrorResponse not yet followed by a ReadyForQuery; 0: none
    private long syncsAtError;
    private int transactionStatus = (int)TransactionStatus.Unknown;
    private int shutdownRequested;
    private TaskCompletionSource? noOutstandingWaiter;
    private Action? loggedIn;
    private readonly Dictionary<string, string> parameters = new(StringComparer.Ordinal);
    private (int ProcessId, byte[] SecretKey)? backendKey;
    private string? clientEncodingName;
    private long parameterReports;
    private Encoding? clientEncoding;

    /// <param name="trackStatements">Whether to keep <see cref="Statements"/>: it costs a decode of every Parse, Bind,
    /// Describe, Execute, Close and RowDescription, so it is on only for sessions that need the columns of rows.</param>
    public ServerProtocolState(bool trackStatements = false)
    {
        statements = trackStatements ? new StatementTracker() : null;
    }

    private StatementTracker? statements;

    /// <summary>The server's prepared statements and portals with their row descriptions; null when not tracked.</summary>
    public StatementTracker? Statements => Volatile.Read(ref statements);

    /// <summary>
    /// Starts keeping <see cref="Statements"/> in a session that began without (masks a reload added need the columns
    /// of rows). Call from the frontend pump only, between requests (nothing outstanding, no extended batch open), so
    /// that the first response the tracker sees answers a request it saw. What was prepared before stays unknown.
    /// </summary>
    public void StartTrackingStatements()
    {
        if (Volatile.Read(ref statements) is null && OutstandingRequests == 0 && !ExtendedBatchOpen)
        {
            Volatile.Write(ref statements, new StatementTracker());
        }
    }

    /// <summary>
    /// Transaction pooling's record of the responses still owed, request by request, so the proxy's own messages on a
    /// linked connection are answered to it and not to the client; null in the other modes.
    /// </summary>
    public Pooling.ResponseSequencer? Responses { get; init; }

    /// <summary>How many ParameterStatus messages the server has sent (a change of a reported setting).</summary>
    public long ParameterReports => Volatile.Read(ref parameterReports);

    /// <summary>The client_encoding the server last reported, or null before it reported one.</summary>
    public string? ClientEncodingName => Volatile.Read(ref clientEncodingName);

    /// <summary>The encoding of <see cref="ClientEncodingName"/>; null when unreported or unknown to PgProxy.</summary>
    public Encoding? ClientEncoding => Volatile.Read(ref clientEncoding);

    /// <summary>Transaction status of the last ReadyForQuery.</summary>
    public TransactionStatus TransactionStatus => (TransactionStatus)Volatile.Read(ref transactionStatus);

    /// <summary>Query, Sync and FunctionCall messages whose ReadyForQuery has not arrived yet.</summary>
    public long OutstandingRequests => Volatile.Read(ref requestsSent) - Volatile.Read(ref readyReceived);

    /// <summary>Between statements, outside a transaction, with nothing in flight: a safe point to end the session.</summary>
    public bool IsIdle => OutstandingRequests == 0 && TransactionStatus == TransactionStatus.Idle;

    public bool ShutdownRequested => Volatile.Read(ref shutdownRequested) != 0;

    /// <summary>
    /// True while extended-protocol messages have been forwarded without their Sync: the server is inside the client's
    /// batch, so the proxy cannot slip a query of its own in. Written by the frontend pump only.
    /// </summary>
    public bool ExtendedBatchOpen { get; set; }

    /// <summary>Completes when every request forwarded so far has its ReadyForQuery (used before a metadata query).</summary>
    public Task WhenNoOutstandingRequestsAsync(CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Full fences on both sides (here and the increment in OnReadyForQuery): with plain volatile accesses each side
        // could miss the other's write (a store then a load may be reordered) and the wait would never end. One
        // metadata query runs at a time per session, so one waiter is enough.
        Interlocked.Exchange(ref noOutstandingWaiter, waiter);
        if (OutstandingRequests == 0)
        {
            waiter.TrySetResult();
        }

        return waiter.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Called by the frontend pump (its only writer) for each Query, Sync or FunctionCall it forwards.</summary>
    public void OnRequestForwarded() => Volatile.Write(ref requestsSent, requestsSent + 1);

    /// <summary>Called by the frontend pump (its only writer) for each Sync it forwards, after <see cref="OnRequestForwarded"/>.</summary>
    public void OnSyncForwarded() => Volatile.Write(ref syncsSent, syncsSent + 1);

    /// <summary>
    /// Called by the backend pump (its only writer) for each ErrorResponse. PostgreSQL follows an error either with a
    /// ReadyForQuery at once (a simple Query, or a batch whose Sync it has already received) or, inside an extended
    /// batch, by skipping every message until a Sync: then it waits for the client, with nothing running.
    /// </summary>
    public void OnErrorResponse()
    {
        // The Syncs forwarded so far, read before the time is published: a Sync forwarded after this read ends the
        // wait (see WaitingForSyncSince), one forwarded before it is answered by the ReadyForQuery that clears it.
        Volatile.Write(ref syncsAtError, Volatile.Read(ref syncsSent));
        Volatile.Write(ref errorAt, Math.Max(1, Environment.TickCount64));
    }

    /// <summary>
    /// When the server began to wait for the client's Sync after an error in an extended batch (TickCount64), or 0 when
    /// it is not waiting that way: an ErrorResponse came, and neither a ReadyForQuery nor a Sync since. Read by
    /// <c>client-idle-timeout</c>'s timer; only a Sync ends PostgreSQL's skipping, so a Query sent meanwhile does not.
    /// </summary>
    public long WaitingForSyncSince
    {
        get
        {
            long since = Volatile.Read(ref errorAt);
            if (since == 0 || Volatile.Read(ref syncsSent) != Volatile.Read(ref syncsAtError))
            {
                return 0;
            }

            // The backend may have moved on to another error between these reads: then ask again at the next check.
            return Volatile.Read(ref errorAt) == since ? since : 0;
        }
    }

    /// <summary>
    /// Registers what to call, once, at the login's ReadyForQuery (the first one the server sends); called on the
    /// backend pump's thread. Register before the relay starts.
    /// </summary>
    public void OnLoggedIn(Action callback) => Volatile.Write(ref loggedIn, callback);

    /// <summary>Called by the backend pump (its only writer) for each ReadyForQuery it forwards.</summary>
    public void OnReadyForQuery(byte status)
    {
        Volatile.Write(ref errorAt, 0);
        Volatile.Write(ref transactionStatus, status);
        if (Interlocked.Increment(ref readyReceived) == 1)
        {
            Interlocked.Exchange(ref loggedIn, null)?.Invoke();
        }

        if (Volatile.Read(ref noOutstandingWaiter) is { } waiter && OutstandingRequests == 0)
        {
            waiter.TrySetResult();
        }
    }

    /// <summary>The number the next request forwarded will have; its ReadyForQuery closes the response group of that number.</summary>
    public long NextRequestNumber => Volatile.Read(ref requestsSent) + 1;

    /// <summary>The number of the response group the backend is receiving now.</summary>
    public long CurrentResponseGroup => Volatile.Read(ref readyReceived) + 1;

    /// <summary>
    /// Asks the session to end at its next idle point, or with <paramref name="afterNextRequest"/> at the first idle
    /// point after one more request of the client's; true when it may end now.
    /// </summary>
    public bool RequestShutdown(bool afterNextRequest = false)
    {
        if (afterNextRequest)
        {
            Volatile.Write(ref shutdownAfterRequests, Volatile.Read(ref requestsSent) + 1);
        }

        // A full fence: the backend pump writes its counters and then reads this flag; this writes the flag and then
        // reads the counters. Without it both could miss each other and the session would never end.
        Interlocked.Exchange(ref shutdownRequested, 1);
        return IsIdle && !afterNextRequest;
    }

    private long shutdownAfterRequests; // with RequestShutdown(afterNextRequest): the requests sent before the session may end

    /// <summary>Called by the backend pump after forwarding a batch; tells the session when it may end now.</summary>
    public bool ShouldEndAfterBatch() => ShutdownRequested && IsIdle && Volatile.Read(ref requestsSent) >= Volatile.Read(ref shutdownAfterRequests);

    /// <summary>The server's process id and cancel key from its BackendKeyData; null until the login sent it.</summary>
    public (int ProcessId, byte[] SecretKey)? BackendKey
    {
        get
        {
            lock (parameters)
            {
                return backendKey;
            }
        }
    }

    /// <summary>The parameters the server reported with ParameterStatus (server_version, client_encoding, ...), latest values.</summary>
    public IReadOnlyDictionary<string, string> Parameters
    {
        get
        {
            lock (parameters)
            {
                return new Dictionary<string, string>(parameters, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Called by the backend pump for each BackendKeyData; the key is copied (it is a slice of the receive buffer).</summary>
    public void OnBackendKeyData(in ReadOnlySequence<byte> body)
    {
        // Protocol 3.2's rule admits every key length a 3.0 server sends, too.
        if (BackendKeyDataMessage.TryRead(body, StartupCodes.Protocol32, out int processId, out ReadOnlySequence<byte> key))
        {
            lock (parameters)
            {
                backendKey = (processId, key.ToArray());
            }
        }
    }

    /// <summary>Called by the backend pump for each ParameterStatus: at login, and when a reported setting changes.</summary>
    public void OnParameterStatus(in ReadOnlySequence<byte> body)
    {
        if (ParameterStatusMessage.TryRead(body, out string name, out string value))
        {
            lock (parameters)
            {
                parameters[name] = value;
            }

            Interlocked.Increment(ref parameterReports);

            if (name == "client_encoding")
            {
                Volatile.Write(ref clientEncoding, PostgresEncodings.Find(value));
                Volatile.Write(ref clientEncodingName, value);
            }
        }
    }
}

using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using PgProxy.Core.Server;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A server connection a pool lends: logged in by PgProxy, with the parameters the server reported and the key that
/// cancels its statements. While idle in the pool a read stays pending on it, so a server that closes it (a restart, an
/// idle timeout on the server) is noticed at once and the connection is not lent again.
/// </summary>
internal sealed class PooledServer : IAsyncDisposable
{
    private Task? idleWatch;
    private int broken;
    private int cancelsInFlight;
    private TaskCompletionSource? cancelsDone;

    public PooledServer(UpstreamLeg leg, ServerLoginResult login, int preparedStatements = 0)
    {
        ArgumentNullException.ThrowIfNull(login);
        Leg = leg;
        Parameters = login.Parameters;
        BackendKey = login.BackendKey;
        Statements = new ServerStatements(preparedStatements);
    }

    /// <summary>Transaction pooling: the clients' statements PgProxy has prepared here, under its own names.</summary>
    public ServerStatements Statements { get; }

    /// <summary>Transaction pooling: the settings set here since the login, by whichever clients had the connection.</summary>
    public SessionSettings Settings { get; } = new();

    /// <summary>Which client session had the connection last, and the version of its settings then (a link to the same one with the same settings sets nothing).</summary>
    public (long Session, long SettingsVersion) LastLink { get; set; } = (-1, -1);

    /// <summary>A CancelRequest for this connection is on its way to the server; <see cref="CancelEnded"/> when its connection has closed.</summary>
    public void CancelStarted() => Interlocked.Increment(ref cancelsInFlight);

    public void CancelEnded()
    {
        if (Interlocked.Decrement(ref cancelsInFlight) == 0)
        {
            Interlocked.Exchange(ref cancelsDone, null)?.TrySetResult();
        }
    }

    /// <summary>
    /// Completes when no CancelRequest for this connection is in flight: one that arrived late would cancel the next
    /// client's statement, so the connection goes back to its pool only after. Bounded by <paramref name="timeout"/>.
    /// </summary>
    public async Task WhenNoCancelsAsync(TimeSpan timeout)
    {
        if (Volatile.Read(ref cancelsInFlight) == 0)
        {
            return;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref cancelsDone, done);
        if (Volatile.Read(ref cancelsInFlight) == 0)
        {
            return;
        }

        try
        {
            await done.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The cancel connection hangs: the session's own deadline is the bound, the pool goes on.
        }
    }

    public UpstreamLeg Leg { get; }

    /// <summary>The server's parameters as it last reported them (ParameterStatus).</summary>
    public Dictionary<string, string> Parameters { get; }

    /// <summary>The BackendKeyData body that cancels this connection's statements; null if the server sent none.</summary>
    public byte[]? BackendKey { get; }

    /// <summary>The server closed the connection, or sent something while it was idle: it is not lent again.</summary>
    public bool IsBroken
    {
        get
        {
            if (Volatile.Read(ref broken) == 0 && idleWatch is null && PlainSocket is { } socket && Readable(socket))
            {
                Volatile.Write(ref broken, 1);
            }

            return Volatile.Read(ref broken) != 0;
        }
    }

    /// <summary>
    /// The socket of a plain-text connection: idle, nothing should arrive on it, so a poll that finds it readable
    /// (a close, or a message nobody asked for) is enough to know it is broken, with no read to start and cancel
    /// around each loan (a cancelled read costs an exception). TLS connections keep a pending read instead: a TLS
    /// record may arrive that is not a message.
    /// </summary>
    private System.Net.Sockets.Socket? PlainSocket => Leg.Stream switch
    {
        Transport.LoopSocketStream loop => loop.Socket,
        System.Net.Sockets.NetworkStream network => network.Socket,
        _ => null,
    };

    /// <summary>Starts watching the idle connection; the pool calls it as the connection goes idle.</summary>
    public void WatchWhileIdle()
    {
        if (PlainSocket is null)
        {
            idleWatch = WatchAsync();
        }
    }

    /// <summary>Stops watching before the connection is used; false when the server closed it meanwhile.</summary>
    public async ValueTask<bool> StopWatchingAsync()
    {
        if (idleWatch is { } watch)
        {
            Leg.Reader.CancelPendingRead();
            await watch.ConfigureAwait(false);
            idleWatch = null;
        }

        return !IsBroken;
    }

    private static bool Readable(System.Net.Sockets.Socket socket)
    {
        try
        {
            return socket.Poll(0, System.Net.Sockets.SelectMode.SelectRead);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>
    /// Runs one simple Query on the connection and reads its answer to ReadyForQuery, keeping the ParameterStatus
    /// messages; the first error's SQLSTATE and message are returned (null when none). For the proxy's own statements
    /// between clients: the start-up parameters of the next client, and the reset query.
    /// </summary>
    public Task<(ProtocolError? Error, byte TransactionStatus)> RunAsync(string sql, CancellationToken cancellationToken) =>
        RunAsync(sql, null, cancellationToken);

    /// <summary>Runs one simple Query as <see cref="RunAsync(string, CancellationToken)"/> does, returning the text values of its first row.</summary>
    public async Task<(ProtocolError? Error, string?[]? Row)> QueryRowAsync(string sql, CancellationToken cancellationToken)
    {
        string?[]? row = null;
        (ProtocolError? error, _) = await RunAsync(sql, body => row ??= DataRowValues(body), cancellationToken).ConfigureAwait(false);
        return (error, row);
    }

    private async Task<(ProtocolError? Error, byte TransactionStatus)> RunAsync(string sql, Action<ReadOnlySequence<byte>>? onDataRow, CancellationToken cancellationToken)
    {
        var message = new ArrayBufferWriter<byte>(sql.Length + 16);
        QueryMessages.WriteQuery(message, Encoding.UTF8, sql);
        await Leg.Stream.WriteAsync(message.WrittenMemory, cancellationToken).ConfigureAwait(false);
        ProtocolError? error = null;
        while (true)
        {
            ReadResult result = await Leg.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            while (FrameReader.TryReadFrame(ref buffer, int.MaxValue, out Frame frame) == FrameReadStatus.Complete)
            {
                ReadOnlySequence<byte> body = frame.Body;
                switch ((BackendMessageCode)frame.Code)
                {
                    case BackendMessageCode.ParameterStatus when BackendMessages.TryReadParameterStatus(body, out string name, out string value):
                        Parameters[name] = value;
                        break;
                    case BackendMessageCode.ErrorResponse:
                        error ??= ServerLogin.ErrorOf(body);
                        break;
                    case BackendMessageCode.DataRow:
                        onDataRow?.Invoke(body);
                        break;
                    case BackendMessageCode.ReadyForQuery:
                        byte status = body.IsEmpty ? (byte)'I' : body.FirstSpan[0];
                        Leg.Reader.AdvanceTo(buffer.Start);
                        return (error, status);
                }
            }

            Leg.Reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                throw new IOException("the server closed the connection");
            }
        }
    }

    private static string?[] DataRowValues(ReadOnlySequence<byte> body)
    {
        var reader = new SequenceReader<byte>(body);
        reader.TryReadBigEndian(out short count);
        var values = new string?[Math.Max((int)count, 0)];
        for (int i = 0; i < values.Length && reader.TryReadBigEndian(out int length); i++)
        {
            if (length < 0)
            {
                continue;
            }

            values[i] = Encoding.UTF8.GetString(reader.UnreadSequence.Slice(0, length));
            reader.Advance(length);
        }

        return values;
    }

    public async ValueTask DisposeAsync()
    {
        if (idleWatch is { } watch)
        {
            Leg.Reader.CancelPendingRead();
            await watch.ConfigureAwait(false);
        }

        await Leg.DisposeAsync().ConfigureAwait(false);
    }

    private async Task WatchAsync()
    {
        try
        {
            ReadResult result = await Leg.Reader.ReadAsync().ConfigureAwait(false);
            if (!result.IsCanceled)
            {
                Volatile.Write(ref broken, 1); // a close, or a message nobody asked for: the state is no longer known
            }

            Leg.Reader.AdvanceTo(result.Buffer.Start);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            Volatile.Write(ref broken, 1);
        }
    }
}

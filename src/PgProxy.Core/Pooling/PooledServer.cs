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

    public PooledServer(UpstreamLeg leg, ServerLoginResult login)
    {
        ArgumentNullException.ThrowIfNull(login);
        Leg = leg;
        Parameters = login.Parameters;
        BackendKey = login.BackendKey;
    }

    public UpstreamLeg Leg { get; }

    /// <summary>The server's parameters as it last reported them (ParameterStatus).</summary>
    public Dictionary<string, string> Parameters { get; }

    /// <summary>The BackendKeyData body that cancels this connection's statements; null if the server sent none.</summary>
    public byte[]? BackendKey { get; }

    /// <summary>The server closed the connection, or sent something while it was idle: it is not lent again.</summary>
    public bool IsBroken => Volatile.Read(ref broken) != 0;

    /// <summary>Starts watching the idle connection; the pool calls it as the connection goes idle.</summary>
    public void WatchWhileIdle() => idleWatch = WatchAsync();

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

    /// <summary>
    /// Runs one simple Query on the connection and reads its answer to ReadyForQuery, keeping the ParameterStatus
    /// messages; the first error's SQLSTATE and message are returned (null when none). For the proxy's own statements
    /// between clients: the start-up parameters of the next client, and the reset query.
    /// </summary>
    public async Task<(ProtocolError? Error, byte TransactionStatus)> RunAsync(string sql, CancellationToken cancellationToken)
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

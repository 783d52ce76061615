using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Sessions;
using PgProxy.Core.Tls;
using PgProxy.Core.Transport;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Client;

/// <summary>
/// The client's half of a session: its socket and stream (TLS once negotiated), the start-up phase as PostgreSQL
/// answers it (SSLRequest, GSSENCRequest, direct TLS, the start-up packet, a CancelRequest), and the errors PgProxy
/// raises to the client itself. It knows nothing of the server: a session links it to one, an admin session to none.
/// </summary>
internal sealed class ClientConnection : IAsyncDisposable
{
    /// <summary>How long a refused client may go on sending before the proxy closes on it.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private readonly long sessionId;
    private readonly Socket socket;
    private readonly EventLoop? loop;
    private readonly SessionEnvironment environment;
    private readonly InstanceSecurity security;
    private readonly Func<long>? waitingForSyncSince;
    private PipeReader? reader;
    private ClientIdleWatch? idleWatch;

    // waitingForSyncSince: the session's word on whether its server is skipping to the client's Sync after an error
    // (see ClientIdleWatch); the client's half knows no more of the server than that.
    public ClientConnection(long sessionId, Socket socket, EventLoop? loop, SessionEnvironment environment, InstanceSecurity security, Func<long>? waitingForSyncSince = null)
    {
        this.sessionId = sessionId;
        this.socket = socket;
        this.loop = loop;
        this.environment = environment;
        this.security = security;
        this.waitingForSyncSince = waitingForSyncSince;
        RemoteEndPoint = socket.RemoteEndPoint;
        Address = RemoteEndPoint?.ToString() ?? "unknown";
    }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>The client's address, for log lines.</summary>
    public string Address { get; }

    /// <summary>The socket's stream, or TLS over it once negotiated.</summary>
    public Stream Stream { get; private set; } = Stream.Null;

    /// <summary>Reads <see cref="Stream"/>; valid once <see cref="ReadStartupAsync"/> returned a packet.</summary>
    public PipeReader Reader => reader ?? throw new InvalidOperationException("the client connection has not been opened");

    public bool Encrypted { get; private set; }

    /// <summary>Puts the socket on the session's loop; false (logged) when the client reset already or the loop cannot take it.</summary>
    public bool TryOpen()
    {
        try
        {
            socket.NoDelay = true;
            SocketKeepalive.Apply(socket, environment.Instance.ListenKeepalive);
            Stream = loop is null ? new NetworkStream(socket, ownsSocket: true) : new LoopSocketStream(socket, loop);
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // epoll's watch limit, say.
            Log.SessionFailed(environment.Logger, sessionId, e);
            socket.Dispose();
            return false;
        }
    }

    /// <summary>
    /// Reads start-up packets until a StartupMessage arrives, within <c>startup-timeout</c>: direct TLS and an
    /// SSLRequest get the handshake when the instance offers TLS, encryption requests are otherwise answered 'N', a
    /// cancel request goes to <paramref name="cancel"/>, and anything invalid (or plain text under listen.tls.mode
    /// require) is refused with PostgreSQL's error. Null means the connection is over.
    /// </summary>
    public async Task<StartupPacket?> ReadStartupAsync(Func<StartupPacket, Task> cancel, CancellationToken stopping)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(environment.Instance.Limits.StartupTimeout);
        if (security.Server is { } directTls && !await AcceptDirectTlsAsync(directTls, deadline.Token, stopping).ConfigureAwait(false))
        {
            return null;
        }

        reader ??= PipeReader.Create(Stream, SessionEnvironment.ReaderOptions);
        bool sslRequested = false;
        bool gssRequested = false;
        try
        {
            while (true)
            {
                PipeReader reader = Reader;
                ReadResult result = await reader.ReadAsync(deadline.Token).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                StartupReadStatus status = StartupPacketReader.TryRead(ref buffer, out StartupPacket? packet, out ProtocolError? error);
                if (status == StartupReadStatus.Incomplete)
                {
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted)
                    {
                        Log.ClosedBeforeStartup(environment.Logger, sessionId, Address);
                        return null;
                    }

                    continue;
                }

                bool moreBuffered = !buffer.IsEmpty;
                reader.AdvanceTo(buffer.Start);
                if (status == StartupReadStatus.Invalid)
                {
                    await RefuseAsync(error!).ConfigureAwait(false);
                    return null;
                }

                switch (packet!.Kind)
                {
                    case StartupPacketKind.SslRequest:
                    case StartupPacketKind.GssEncRequest:
                        // PostgreSQL takes one of each at most before the StartupMessage; a repeated one is to it
                        // an unknown protocol version.
                        bool isSsl = packet.Kind == StartupPacketKind.SslRequest;
                        if (isSsl ? sslRequested : gssRequested)
                        {
                            await RefuseAsync(new ProtocolError(SqlStates.FeatureNotSupported, $"unsupported frontend protocol {StartupCodes.Major(packet.VersionCode)}.{StartupCodes.Minor(packet.VersionCode)}: server supports 3.0 to 3.2")).ConfigureAwait(false);
                            return null;
                        }

                        sslRequested |= isSsl;
                        gssRequested |= !isSsl;
                        if (isSsl && security.Server is { } tls && !Encrypted)
                        {
                            // Bytes after the SSLRequest would be plain text the client sent before the handshake:
                            // PostgreSQL refuses them (CVE-2021-23214), and so does the proxy.
                            if (moreBuffered)
                            {
                                await RefuseAsync(new ProtocolError(SqlStates.ProtocolViolation, "received unencrypted data after SSL request")).ConfigureAwait(false);
                                return null;
                            }

                            await Stream.WriteAsync(PregeneratedMessages.EncryptionAccepted, deadline.Token).ConfigureAwait(false);
                            await reader.CompleteAsync().ConfigureAwait(false);
                            this.reader = null;
                            if (!await HandshakeAsync(tls, "SSLRequest", deadline.Token).ConfigureAwait(false))
                            {
                                return null;
                            }

                            continue;
                        }

                        Log.EncryptionRefused(environment.Logger, sessionId, Address, isSsl ? "SSLRequest" : "GSSENCRequest");
                        await Stream.WriteAsync(PregeneratedMessages.EncryptionRefused, deadline.Token).ConfigureAwait(false);
                        continue;
                    case StartupPacketKind.CancelRequest:
                        await cancel(packet).ConfigureAwait(false);
                        return null;
                    default:
                        if (security.Server is { Mode: ListenTlsMode.Require } && !Encrypted)
                        {
                            await RefuseAsync(new ProtocolError(SqlStates.InvalidAuthorizationSpecification, "TLS is required")).ConfigureAwait(false);
                            return null;
                        }

                        if (environment.Instance.Limits.ClientIdleTimeout is { } idleTimeout)
                        {
                            WatchIdle(idleTimeout);
                        }

                        return packet;
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            if (stopping.IsCancellationRequested)
            {
                await RefuseAsync(new ProtocolError(SqlStates.AdminShutdown, "terminating connection due to administrator command")).ConfigureAwait(false);
            }
            else
            {
                Log.StartupRefused(environment.Logger, sessionId, Address, SqlStates.ProtocolViolation, "timeout waiting for the startup packet");
            }

            return null;
        }
        catch (IOException)
        {
            // The connection broke before a StartupMessage came: a reset, or after an SSLRequest a TLS record that does
            // not decrypt (found by bench/hostile.sh). There is no session to fail and no one to tell.
            Log.ClosedBeforeStartup(environment.Logger, sessionId, Address);
            return null;
        }
    }

    /// <summary>
    /// PostgreSQL 17's direct TLS: a connection that opens with a TLS handshake record instead of a start-up packet.
    /// The first byte is peeked, not read, so either way the stream starts where the client started. False means
    /// the connection is over (the handshake failed, or the client did not announce ALPN "postgresql").
    /// </summary>
    private async Task<bool> AcceptDirectTlsAsync(ServerTls tls, CancellationToken deadline, CancellationToken stopping)
    {
        const byte TlsHandshakeRecord = 0x16;
        byte[] first = new byte[1];
        try
        {
            int peeked = Stream is LoopSocketStream onLoop
                ? await onLoop.PeekAsync(first, deadline).ConfigureAwait(false)
                : await socket.ReceiveAsync(first, SocketFlags.Peek, deadline).ConfigureAwait(false);
            if (peeked == 0 || first[0] != TlsHandshakeRecord)
            {
                return true; // a start-up packet, or a close the start-up reader will notice
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            Log.StartupRefused(environment.Logger, sessionId, Address, SqlStates.ProtocolViolation, "timeout waiting for the startup packet");
            return false;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return true; // the start-up reader reports it
        }

        if (!await HandshakeAsync(tls, "direct", deadline).ConfigureAwait(false))
        {
            return false;
        }

        // As PostgreSQL does: direct TLS without ALPN could be some other protocol's client (or an attack on one).
        if (((SslStream)Stream).NegotiatedApplicationProtocol != ServerTls.PostgresProtocol)
        {
            Log.ClientTlsFailed(environment.Logger, sessionId, Address, "direct TLS connection without ALPN protocol \"postgresql\"");
            return false;
        }

        return true;
    }

    /// <summary>Runs the server side of a TLS handshake on the stream, which then is TLS for the rest of the connection.</summary>
    private async Task<bool> HandshakeAsync(ServerTls tls, string how, CancellationToken cancellationToken)
    {
        var ssl = new SslStream(Stream, leaveInnerStreamOpen: false);
        Stream = ssl;
        try
        {
            await ssl.AuthenticateAsServerAsync(tls.Options(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            Log.ClientTlsFailed(environment.Logger, sessionId, Address, e is OperationCanceledException ? "timed out" : e.Message);
            return false;
        }

        Encrypted = true;
        reader = PipeReader.Create(ssl, SessionEnvironment.ReaderOptions);
        Log.ClientTlsEstablished(environment.Logger, sessionId, Address, ssl.SslProtocol, how);
        return true;
    }

    /// <summary>From the login on, the client's reads and writes go through <c>client-idle-timeout</c>'s watch.</summary>
    private void WatchIdle(TimeSpan timeout)
    {
        idleWatch = new ClientIdleWatch(timeout, ExpireIdleAsync, waitingForSyncSince);
        Stream = idleWatch.Watch(Stream);
        reader = idleWatch.Watch(Reader);

        async ValueTask ExpireIdleAsync()
        {
            Log.ClientIdleTimedOut(environment.Logger, sessionId, Address, timeout.TotalSeconds);
            environment.Metrics.ClientError(environment.InstanceName, SqlStates.IdleSessionTimeout);
            await TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.IdleSessionTimeout, "terminating connection due to idle-session timeout")).ConfigureAwait(false);
            try
            {
                // The session's pumps see the client's end of stream and close the server connection as for any client that leaves.
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Gone already.
            }
        }
    }

    /// <summary>Sends a FATAL error before the client is closed, as PostgreSQL does for a refused connection.</summary>
    public async Task RefuseAsync(ProtocolError error)
    {
        Log.StartupRefused(environment.Logger, sessionId, Address, error.SqlState, error.Message);
        environment.Metrics.ClientError(environment.InstanceName, error.SqlState);
        await TryWriteAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, error)).ConfigureAwait(false);
    }

    /// <summary>Writes a message of the proxy's own; a client that is gone or stalled is not waited for.</summary>
    public Task TryWriteAsync(ReadOnlyMemory<byte> message) => BoundedWrites.TryWriteAsync(Stream, message);

    /// <summary>
    /// After refusing a client's message, ends the proxy's side of the stream and discards what the client is still
    /// sending (for a bounded time), so the client finishes its write and reads the error. Closing at once, with
    /// its bytes unread, would reset the connection and the client would see a broken pipe instead of the error.
    /// </summary>
    public async Task DrainAsync()
    {
        using var deadline = new CancellationTokenSource(DrainTimeout);
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            while (true)
            {
                ReadResult result = await Reader.ReadAsync(deadline.Token).ConfigureAwait(false);
                Reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The client is gone or keeps sending: close on it now.
        }
    }

    public async ValueTask DisposeAsync()
    {
        idleWatch?.Dispose();
        if (reader is not null)
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }

        await Stream.DisposeAsync().ConfigureAwait(false);
    }
}

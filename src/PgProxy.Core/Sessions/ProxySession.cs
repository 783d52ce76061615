using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using PgProxy.Core.Authentication;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Tls;
using PgProxy.Core.Transport;
using PgProxy.Core.Upstream;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Frontend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Sessions;

/// <summary>
/// One client connection, from its first byte to its close: the start-up phase (answered or relayed as
/// PostgreSQL would), then two pumps relaying messages until either side ends. Whatever ends the session,
/// both connections are closed before <see cref="RunAsync"/> returns.
/// </summary>
internal sealed class ProxySession : IDisposable
{
    private static readonly TimeSpan ErrorWriteTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a refused client may go on sending before the proxy closes on it.</summary>
    private static readonly TimeSpan ClientDrainTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a server may take to close its end after the client's Terminate, before the proxy closes it.</summary>
    private static readonly TimeSpan UpstreamCloseGrace = TimeSpan.FromSeconds(1);

    private readonly SessionEnvironment environment;
    private readonly Socket clientSocket;
    private readonly string clientAddress;
    private readonly SessionState state = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly InstanceSecurity security;

    // Both of the session's sockets are on this loop (null: on .NET's socket engine), so a message crosses the proxy
    // on one thread.
    private readonly EventLoop? loop = EventLoops.Next();

    // The client's stream and reader: the socket's, or TLS over it once negotiated.
    private Stream clientStream = Stream.Null;
    private PipeReader? clientReader;
    private bool clientEncrypted;
    private long authenticationBytesToClient; // what the authentication exchange wrote before the pumps
    private string? authenticationRefusal;
    private int shutdownMode; // 0 none, 1 at the next idle point, 2 now
    private int relaying;

    public ProxySession(long id, SessionEnvironment environment, Socket clientSocket)
    {
        Id = id;
        this.environment = environment;
        this.clientSocket = clientSocket;
        clientAddress = clientSocket.RemoteEndPoint?.ToString() ?? "unknown";
        security = environment.Security;
    }

    public long Id { get; }

    /// <summary>Ends the session at its next idle point (between transactions, nothing in flight), telling the client why.</summary>
    public void RequestShutdown()
    {
        Interlocked.CompareExchange(ref shutdownMode, 1, 0);
        bool idle = state.RequestShutdown();

        // Before the relay starts there is no transaction to wait for.
        if (idle || Volatile.Read(ref relaying) == 0)
        {
            Stop();
        }
    }

    /// <summary>Ends the session now, busy or not, telling the client why when the stream allows it.</summary>
    public void Abort()
    {
        Volatile.Write(ref shutdownMode, 2);
        Stop();
    }

    public void Dispose() => stopping.Dispose();

    private void Stop()
    {
        try
        {
            stopping.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The session ended while the shutdown reached it.
        }
    }

    public async Task RunAsync()
    {
        try
        {
            clientSocket.NoDelay = true;
            clientStream = loop is null ? new NetworkStream(clientSocket, ownsSocket: true) : new LoopSocketStream(clientSocket, loop);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // The client reset already, or the loop could not take the socket (epoll's watch limit reached).
            Log.SessionFailed(environment.Logger, Id, e);
            clientSocket.Dispose();
            return;
        }

        try
        {
            if (security.Server is { } tls && !await AcceptDirectTlsAsync(tls).ConfigureAwait(false))
            {
                return;
            }

            clientReader ??= PipeReader.Create(clientStream, SessionEnvironment.ReaderOptions);
            StartupPacket? startup = await ReadStartupAsync().ConfigureAwait(false);
            if (startup is not null)
            {
                await RelayAsync(startup, clientStream, clientReader).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.SessionFailed(environment.Logger, Id, e);
        }
        finally
        {
            if (clientReader is not null)
            {
                await clientReader.CompleteAsync().ConfigureAwait(false);
            }

            await clientStream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// PostgreSQL 17's direct TLS: a connection that opens with a TLS handshake record instead of a start-up packet.
    /// The first byte is peeked, not read, so either way the stream starts where the client started. False means
    /// the session is over (the handshake failed, or the client did not announce ALPN "postgresql").
    /// </summary>
    private async Task<bool> AcceptDirectTlsAsync(ServerTls tls)
    {
        const byte TlsHandshakeRecord = 0x16;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        deadline.CancelAfter(environment.Instance.Limits.StartupTimeout);
        byte[] first = new byte[1];
        try
        {
            int peeked = clientStream is LoopSocketStream onLoop
                ? await onLoop.PeekAsync(first, deadline.Token).ConfigureAwait(false)
                : await clientSocket.ReceiveAsync(first, SocketFlags.Peek, deadline.Token).ConfigureAwait(false);
            if (peeked == 0 || first[0] != TlsHandshakeRecord)
            {
                return true; // a start-up packet, or a close the start-up reader will notice
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            Log.StartupRefused(environment.Logger, Id, clientAddress, SqlStates.ProtocolViolation, "timeout waiting for the startup packet");
            return false;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return true; // the start-up reader reports it
        }

        if (!await HandshakeAsync(tls, "direct", deadline.Token).ConfigureAwait(false))
        {
            return false;
        }

        // As PostgreSQL does: direct TLS without ALPN could be some other protocol's client (or an attack on one).
        if (((SslStream)clientStream).NegotiatedApplicationProtocol != ServerTls.PostgresProtocol)
        {
            Log.ClientTlsFailed(environment.Logger, Id, clientAddress, "direct TLS connection without ALPN protocol \"postgresql\"");
            return false;
        }

        return true;
    }

    /// <summary>Runs the server side of a TLS handshake on the client stream, which then is TLS for the rest of the session.</summary>
    private async Task<bool> HandshakeAsync(ServerTls tls, string how, CancellationToken cancellationToken)
    {
        var ssl = new SslStream(clientStream, leaveInnerStreamOpen: false);
        clientStream = ssl;
        try
        {
            await ssl.AuthenticateAsServerAsync(tls.Options(), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            Log.ClientTlsFailed(environment.Logger, Id, clientAddress, e is OperationCanceledException ? "timed out" : e.Message);
            return false;
        }

        clientEncrypted = true;
        clientReader = PipeReader.Create(ssl, SessionEnvironment.ReaderOptions);
        Log.ClientTlsEstablished(environment.Logger, Id, clientAddress, ssl.SslProtocol, how);
        return true;
    }

    /// <summary>
    /// Reads start-up packets until a StartupMessage arrives: an SSLRequest is answered 'S' and the handshake run when
    /// the instance offers TLS, encryption requests are otherwise answered 'N', a cancel request is forwarded, anything
    /// invalid (or plain text under listen.tls.mode require) is refused with PostgreSQL's error. Null means the session
    /// is over.
    /// </summary>
    private async Task<StartupPacket?> ReadStartupAsync()
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        deadline.CancelAfter(environment.Instance.Limits.StartupTimeout);
        bool sslRequested = false;
        bool gssRequested = false;
        try
        {
            while (true)
            {
                PipeReader reader = clientReader!;
                ReadResult result = await reader.ReadAsync(deadline.Token).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                StartupReadStatus status = StartupPacketReader.TryRead(ref buffer, out StartupPacket? packet, out ProtocolError? error);
                if (status == StartupReadStatus.Incomplete)
                {
                    reader.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted)
                    {
                        Log.ClosedBeforeStartup(environment.Logger, Id, clientAddress);
                        return null;
                    }

                    continue;
                }

                bool moreBuffered = !buffer.IsEmpty;
                reader.AdvanceTo(buffer.Start);
                if (status == StartupReadStatus.Invalid)
                {
                    await RefuseAsync(clientStream, error!).ConfigureAwait(false);
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
                            await RefuseAsync(clientStream, new ProtocolError(SqlStates.FeatureNotSupported, $"unsupported frontend protocol {StartupCodes.Major(packet.VersionCode)}.{StartupCodes.Minor(packet.VersionCode)}: server supports 3.0 to 3.2")).ConfigureAwait(false);
                            return null;
                        }

                        sslRequested |= isSsl;
                        gssRequested |= !isSsl;
                        if (isSsl && security.Server is { } tls && !clientEncrypted)
                        {
                            // Bytes after the SSLRequest would be plain text the client sent before the handshake:
                            // PostgreSQL refuses them (CVE-2021-23214), and so does the proxy.
                            if (moreBuffered)
                            {
                                await RefuseAsync(clientStream, new ProtocolError(SqlStates.ProtocolViolation, "received unencrypted data after SSL request")).ConfigureAwait(false);
                                return null;
                            }

                            await clientStream.WriteAsync(PregeneratedMessages.EncryptionAccepted, deadline.Token).ConfigureAwait(false);
                            await reader.CompleteAsync().ConfigureAwait(false);
                            clientReader = null;
                            if (!await HandshakeAsync(tls, "SSLRequest", deadline.Token).ConfigureAwait(false))
                            {
                                return null;
                            }

                            continue;
                        }

                        Log.EncryptionRefused(environment.Logger, Id, clientAddress, packet.Kind == StartupPacketKind.SslRequest ? "SSLRequest" : "GSSENCRequest");
                        await clientStream.WriteAsync(PregeneratedMessages.EncryptionRefused, deadline.Token).ConfigureAwait(false);
                        continue;
                    case StartupPacketKind.CancelRequest:
                        await ForwardCancelAsync(packet).ConfigureAwait(false);
                        return null;
                    default:
                        if (security.Server is { Mode: ListenTlsMode.Require } && !clientEncrypted)
                        {
                            await RefuseAsync(clientStream, new ProtocolError(SqlStates.InvalidAuthorizationSpecification, "TLS is required")).ConfigureAwait(false);
                            return null;
                        }

                        return packet;
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            if (stopping.IsCancellationRequested)
            {
                await RefuseAsync(clientStream, new ProtocolError(SqlStates.AdminShutdown, "terminating connection due to administrator command")).ConfigureAwait(false);
            }
            else
            {
                Log.StartupRefused(environment.Logger, Id, clientAddress, SqlStates.ProtocolViolation, "timeout waiting for the startup packet");
            }

            return null;
        }
    }

    /// <summary>Connects upstream, relays the start-up untouched, then pumps both ways until either side ends.</summary>
    private async Task RelayAsync(StartupPacket startup, Stream clientStream, PipeReader clientReader)
    {
        InstanceInterceptors interceptors = environment.Interceptors;
        SessionContext? context = null;
        byte[] startupBytes = startup.RawBytes;
        if (interceptors.InterceptsQueries || interceptors.InterceptsResponses || interceptors.Connects.Length > 0)
        {
            context = new SessionContext(Id, environment.InstanceName, clientSocket.RemoteEndPoint, startup.Parameters, state, environment.InterceptLogger)
            {
                SessionToken = stopping.Token,
            };
            StartupOutcome outcome = await StartupInterception.RunAsync(interceptors, startup, context, stopping.Token).ConfigureAwait(false);
            if (outcome.Refusal is { } refusal)
            {
                await RefuseAsync(clientStream, refusal).ConfigureAwait(false);
                return;
            }

            startupBytes = outcome.Packet;
        }

        string user = context?.User ?? startup.GetParameter("user") ?? "";
        string database = context?.Database ?? startup.GetParameter("database") ?? user;
        Stream upstreamStream;
        bool upstreamEncrypted;
        try
        {
            (upstreamStream, upstreamEncrypted) = await ConnectUpstreamAsync(stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await RefuseAsync(clientStream, new ProtocolError(SqlStates.AdminShutdown, "terminating connection due to administrator command")).ConfigureAwait(false);
            return;
        }
        catch (UpstreamUnreachableException e)
        {
            Log.UpstreamUnreachable(environment.Logger, Id, environment.Instance.Redirect.Name, e.Message);
            environment.Metrics.UpstreamConnectFailed(environment.InstanceName);
            await RefuseAsync(clientStream, new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, e.Message)).ConfigureAwait(false);
            return;
        }

        Volatile.Write(ref relaying, 1);
        var upstream = new UpstreamLeg(upstreamStream, PipeReader.Create(upstreamStream, SessionEnvironment.ReaderOptions), upstreamEncrypted);
        long started = Stopwatch.GetTimestamp();
        environment.Metrics.SessionOpened(environment.InstanceName);
        Log.SessionOpened(environment.Logger, Id, clientAddress, user, database, environment.InstanceName);
        ServerResponseHandler? responses = null;
        ForwardingPump? frontend = null;
        ForwardingPump? backend = null;
        string reason = "unknown";
        try
        {
            await upstream.Stream.WriteAsync(startupBytes, stopping.Token).ConfigureAwait(false);
            if (clientEncrypted || upstream.Encrypted)
            {
                ExchangeOutcome outcome = await AuthenticateAsync(upstream, startupBytes, user, database).ConfigureAwait(false);
                if (outcome != ExchangeOutcome.Relay)
                {
                    // Closed without a Terminate: a server waiting for a password logs a Terminate as a protocol violation.
                    reason = outcome == ExchangeOutcome.Refuse ? $"refused during authentication: {authenticationRefusal}" : "closed during authentication";
                    return;
                }
            }

            ClientQueryHandler? queries = null;
            if (context is not null && (interceptors.InterceptsQueries || interceptors.InterceptsResponses))
            {
                ResponseInterception? interception = interceptors.InterceptsResponses ? new ResponseInterception(context, interceptors) : null;
                responses = new ServerResponseHandler(state, context, interception);
                if (interceptors.InterceptsQueries || interception?.Tracker is not null)
                {
                    queries = new ClientQueryHandler(state, context, responses, interceptors, interception?.Tracker);
                }

                context.Responses = responses;
            }

            // The pumps start after authentication: the plain-text fallback may have replaced the upstream connection.
            frontend = new ForwardingPump(clientReader, upstream.Stream, state, PumpDirection.ClientToServer, environment.Instance.Limits.MaxMessageSize, queries);
            backend = new ForwardingPump(upstream.Reader, clientStream, state, PumpDirection.ServerToClient, long.MaxValue, responses);
            if (context is not null)
            {
                // Metadata queries go through the frontend's batch, so they stay in order with the client's bytes.
                context.Upstream = frontend.Destination;
            }

            Task<PumpStop> frontendRun = frontend.RunAsync(stopping.Token);
            Task<PumpStop> backendRun = backend.RunAsync(stopping.Token);
            Task<PumpStop> firstStopped = await Task.WhenAny(frontendRun, backendRun).ConfigureAwait(false);
            if (firstStopped == frontendRun && await frontendRun.ConfigureAwait(false) == PumpStop.Terminated)
            {
                await AwaitUpstreamCloseAsync(backendRun).ConfigureAwait(false);
            }

            // One side has ended: stop the other at once, so no upstream connection outlives its client.
            clientReader.CancelPendingRead();
            upstream.Reader.CancelPendingRead();
            // Cancel, not CancelAsync: the callbacks (the other pump's pending reads) are short, and running them
            // here spares a thread-pool hop per session.
            stopping.Cancel();
            PumpStop frontendStop = await frontendRun.ConfigureAwait(false);
            PumpStop backendStop = await backendRun.ConfigureAwait(false);
            reason = await FinishAsync(frontendStop, backendStop, frontend, backend, clientStream, upstream.Stream).ConfigureAwait(false);
            if (frontendStop is PumpStop.MessageTooLarge or PumpStop.InvalidMessage)
            {
                await upstream.DisposeAsync().ConfigureAwait(false);
                await DrainClientAsync(clientReader).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            reason = "stopped";
        }
        catch (IOException)
        {
            reason = "upstream connection failed";
        }
        catch (InvalidDataException e)
        {
            reason = $"invalid message during authentication: {e.Message}";
        }
        finally
        {
            responses?.Abandon();
            await upstream.DisposeAsync().ConfigureAwait(false);
            double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            long fromClient = frontend?.BytesForwarded ?? 0;
            long toClient = backend?.BytesForwarded ?? 0;
            environment.Metrics.SessionClosed(environment.InstanceName, seconds, fromClient, toClient);
            Log.SessionClosed(environment.Logger, Id, clientAddress, user, database, seconds, fromClient, toClient, reason);
        }
    }

    /// <summary>
    /// The part of authentication the proxy takes part in when a leg is encrypted (see <see cref="AuthenticationExchange"/>).
    /// A refusal is sent to the client here; <see cref="authenticationRefusal"/> keeps its text for the close line.
    /// </summary>
    private async Task<ExchangeOutcome> AuthenticateAsync(UpstreamLeg upstream, byte[] startupBytes, string user, string database)
    {
        InstanceConfig instance = environment.Instance;
        PlainTextFallback? fallback = security.Upstream.Mode == UpstreamTlsMode.Prefer
            ? new PlainTextFallback(
                cancellationToken => UpstreamConnector.ConnectAsync(instance.Redirect, instance.Limits.ConnectTimeout, loop, cancellationToken),
                startupBytes,
                environment.ClaimPlainTextFallbackWarning)
            : null;
        var exchange = new AuthenticationExchange(
            clientReader!,
            clientStream,
            upstream,
            security.Verifiers,
            fallback,
            new SessionIdentity(Id, user, database, environment.InstanceName, instance.Redirect.Name, UpstreamTls.Name(security.Upstream.Mode), environment.Logger));
        ExchangeOutcome outcome;
        try
        {
            outcome = await exchange.RunAsync(stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            authenticationBytesToClient = exchange.BytesToClient;
        }

        if (exchange.Refusal is { } refusal)
        {
            authenticationRefusal = refusal.Message;
            await RefuseAsync(clientStream, refusal).ConfigureAwait(false);
        }

        return outcome;
    }

    /// <summary>
    /// After the client's Terminate has gone upstream, gives the server a moment to close its end, which ends the
    /// backend pump on its own. Cancelling that pump's pending read instead completes the read on the thread pool
    /// with an exception, which, once per session, was a large part of the proxy's CPU time under pgbench -C.
    /// </summary>
    private async Task AwaitUpstreamCloseAsync(Task<PumpStop> backendRun)
    {
        try
        {
            await backendRun.WaitAsync(UpstreamCloseGrace, stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // The server keeps the connection open, or the proxy is stopping: the pump is cancelled instead.
        }
    }

    /// <summary>Says goodbye to whichever side can still take a message, and names why the session ended.</summary>
    private async Task<string> FinishAsync(
        PumpStop frontendStop,
        PumpStop backendStop,
        ForwardingPump frontend,
        ForwardingPump backend,
        Stream clientStream,
        Stream upstreamStream)
    {
        ProtocolError? toClient = null;
        string reason;
        if (frontendStop == PumpStop.MessageTooLarge)
        {
            reason = $"client announced a message of {frontend.OffendingLength} bytes, above max-message-size";
            toClient = new ProtocolError(SqlStates.ProtocolViolation, $"invalid message length: {frontend.OffendingLength} bytes exceeds the limit of {environment.Instance.Limits.MaxMessageSize}");
        }
        else if (frontendStop == PumpStop.InvalidMessage)
        {
            reason = $"client sent an invalid message length {frontend.OffendingLength}";
            toClient = new ProtocolError(SqlStates.ProtocolViolation, $"invalid message length {frontend.OffendingLength}");
        }
        else if (backendStop == PumpStop.InvalidMessage)
        {
            reason = $"upstream sent an invalid message length {backend.OffendingLength}";
            toClient = new ProtocolError(SqlStates.ProtocolViolation, $"upstream \"{environment.Instance.Redirect.Name}\" sent an invalid message");
        }
        else if (frontendStop == PumpStop.Terminated)
        {
            reason = "client terminated";
        }
        else if (frontendStop is PumpStop.SourceClosed or PumpStop.SourceFailed || backendStop == PumpStop.DestinationFailed)
        {
            reason = "client closed";
        }
        else if (Volatile.Read(ref shutdownMode) != 0 && backendStop is PumpStop.IdleShutdown or PumpStop.Cancelled)
        {
            reason = "proxy shutting down";
            toClient = new ProtocolError(SqlStates.AdminShutdown, "terminating connection due to administrator command");
        }
        else if (backend.BytesForwarded == 0 && authenticationBytesToClient == 0)
        {
            // The server went away before answering the start-up: the client would otherwise see a silent drop.
            reason = "upstream closed before answering the start-up";
            toClient = new ProtocolError(SqlStates.SqlClientUnableToEstablishSqlConnection, $"upstream \"{environment.Instance.Redirect.Name}\" closed the connection before answering the start-up");
        }
        else
        {
            reason = "upstream closed";
        }

        if (toClient is not null)
        {
            Log.SessionProtocolError(environment.Logger, Id, reason);
            if (backend.AtFrameBoundary)
            {
                await TryWriteAsync(clientStream, ErrorResponseWriter.Build(ErrorSeverity.Fatal, toClient)).ConfigureAwait(false);
                environment.Metrics.ClientError(environment.InstanceName, toClient.SqlState);
            }
        }

        // Ending the upstream session politely spares the server an "unexpected EOF" in its log.
        if (frontendStop != PumpStop.Terminated && frontend.AtFrameBoundary)
        {
            await TryWriteAsync(upstreamStream, FrontendMessages.Terminate).ConfigureAwait(false);
        }

        return reason;
    }

    /// <summary>
    /// After refusing a client's message, ends the proxy's side of the stream and discards what the client is still
    /// sending (for a bounded time), so the client finishes its write and reads the error. Closing at once, with
    /// its bytes unread, would reset the connection and the client would see a broken pipe instead of the error.
    /// </summary>
    private async Task DrainClientAsync(PipeReader clientReader)
    {
        using var deadline = new CancellationTokenSource(ClientDrainTimeout);
        try
        {
            clientSocket.Shutdown(SocketShutdown.Send);
            while (true)
            {
                ReadResult result = await clientReader.ReadAsync(deadline.Token).ConfigureAwait(false);
                clientReader.AdvanceTo(result.Buffer.End);
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

    /// <summary>Sends a FATAL error before the client is closed, as PostgreSQL does for a refused connection.</summary>
    private async Task RefuseAsync(Stream clientStream, ProtocolError error)
    {
        Log.StartupRefused(environment.Logger, Id, clientAddress, error.SqlState, error.Message);
        environment.Metrics.ClientError(environment.InstanceName, error.SqlState);
        await TryWriteAsync(clientStream, ErrorResponseWriter.Build(ErrorSeverity.Fatal, error)).ConfigureAwait(false);
    }

    private async Task ForwardCancelAsync(StartupPacket cancel)
    {
        string upstreamName = environment.Instance.Redirect.Name;
        try
        {
            using var deadline = new CancellationTokenSource(ErrorWriteTimeout + environment.Instance.Limits.ConnectTimeout);
            (Stream stream, _) = await ConnectUpstreamAsync(deadline.Token).ConfigureAwait(false);
            await using var owned = stream.ConfigureAwait(false);
            await stream.WriteAsync(cancel.RawBytes, deadline.Token).ConfigureAwait(false);

            // PostgreSQL answers a cancel request by closing; waiting for that keeps the request from being cut short.
            byte[] probe = new byte[1];
            _ = await stream.ReadAsync(probe, deadline.Token).ConfigureAwait(false);
            Log.CancelForwarded(environment.Logger, Id, clientAddress, upstreamName);
        }
        catch (Exception e) when (e is UpstreamUnreachableException or IOException or SocketException or OperationCanceledException)
        {
            Log.CancelFailed(environment.Logger, Id, clientAddress, upstreamName, e.Message);
        }
    }

    /// <summary>
    /// Opens the upstream connection with the encryption <c>redirect.tls</c> asks for, within connect-timeout. A TLS
    /// failure is reported as the upstream being unreachable, with the reason (08001 to the client).
    /// </summary>
    private async Task<(Stream Stream, bool Encrypted)> ConnectUpstreamAsync(CancellationToken cancellationToken)
    {
        EndpointConfig redirect = environment.Instance.Redirect;
        TimeSpan timeout = environment.Instance.Limits.ConnectTimeout;
        Stream plain = await UpstreamConnector.ConnectAsync(redirect, timeout, loop, cancellationToken).ConfigureAwait(false);
        if (security.Upstream.Mode == UpstreamTlsMode.Disable)
        {
            return (plain, false);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            (Stream stream, bool encrypted) = await security.Upstream.NegotiateAsync(plain, redirect.Host, deadline.Token).ConfigureAwait(false);
            Log.UpstreamEncryption(environment.Logger, Id, redirect.Name, encrypted ? $"TLS ({((SslStream)stream).SslProtocol})" : "plain text");
            return (stream, encrypted);
        }
        catch (UpstreamTlsException e)
        {
            throw new UpstreamUnreachableException($"could not connect to upstream \"{redirect.Name}\" at {redirect.Host}:{redirect.Port}: {e.Message}", e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamUnreachableException($"could not connect to upstream \"{redirect.Name}\" at {redirect.Host}:{redirect.Port}: SSL negotiation timed out after {timeout.TotalSeconds:0.###} s");
        }
    }

    private static async Task TryWriteAsync(Stream stream, ReadOnlyMemory<byte> message)
    {
        try
        {
            using var deadline = new CancellationTokenSource(ErrorWriteTimeout);
            await stream.WriteAsync(message, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer is gone or stalled; the connection is being closed anyway.
        }
    }
}

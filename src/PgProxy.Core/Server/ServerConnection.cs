using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using PgProxy.Core.Authentication;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Sessions;
using PgProxy.Core.Tls;
using PgProxy.Core.Transport;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Startup;

namespace PgProxy.Core.Server;

/// <summary>
/// The server's half of a session: the connection to the instance's PostgreSQL (TCP, then TLS as
/// <c>redirect.tls</c> asks), the login, and the server's protocol state, which the relay keeps up to date. It
/// outlives nothing of the client's: a session links the two, and a pooler will link it to one client after another.
/// </summary>
internal sealed class ServerConnection : IAsyncDisposable
{
    private static readonly TimeSpan CancelWriteTimeout = TimeSpan.FromSeconds(5);

    private readonly SessionEnvironment environment;
    private readonly InstanceSecurity security;
    private readonly EventLoop? loop;
    private readonly long sessionId;
    private readonly Socket? socket;
    private Timer? loginDeadline;

    private ServerConnection(SessionEnvironment environment, InstanceSecurity security, EventLoop? loop, long sessionId, UpstreamLeg leg, ServerProtocolState state, Socket? socket)
    {
        this.socket = socket;
        State = state;
        this.environment = environment;
        this.security = security;
        this.loop = loop;
        this.sessionId = sessionId;
        Leg = leg;
    }

    /// <summary>The stream, reader and encryption of the connection; the login may replace it (the plain-text fallback).</summary>
    public UpstreamLeg Leg { get; }

    /// <summary>Transaction status and requests still unanswered, as the relay observed them.</summary>
    public ServerProtocolState State { get; }

    /// <summary>
    /// Opens the connection within connect-timeout. <paramref name="state"/> is the one the session's interceptors
    /// already see (their context exists before the connection does).
    /// </summary>
    /// <exception cref="UpstreamUnreachableException">Refused, unresolvable, timed out, or not with the TLS the mode demands.</exception>
    public static async Task<ServerConnection> ConnectAsync(
        SessionEnvironment environment, InstanceSecurity security, EventLoop? loop, long sessionId, ServerProtocolState state, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        (Stream stream, bool encrypted, Socket? socket, long connected) = await OpenAsync(environment, security, loop, sessionId, cancellationToken).ConfigureAwait(false);
        environment.Metrics.UpstreamConnected(environment.InstanceName, Stopwatch.GetElapsedTime(started).TotalSeconds);
        var leg = new UpstreamLeg(stream, PipeReader.Create(stream, SessionEnvironment.ReaderOptions), encrypted);
        var connection = new ServerConnection(environment, security, loop, sessionId, leg, state, socket);

        // What is left of server-login-timeout after the TLS negotiation, which counts since the TCP connect.
        TimeSpan left = environment.Instance.Limits.ServerLoginTimeout - Stopwatch.GetElapsedTime(connected);
        connection.loginDeadline = new Timer(static self => ((ServerConnection)self!).OnLoginDeadline(), connection, left > TimeSpan.Zero ? left : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        return connection;
    }

    /// <summary>Whether <c>server-login-timeout</c> passed before the server's first ReadyForQuery, and closed the connection.</summary>
    public bool LoginTimedOut { get; private set; }

    /// <summary>
    /// <c>server-login-timeout</c>, counted from the TCP connect: a server that accepted the connection but sends no
    /// ReadyForQuery (frozen, overloaded, or not PostgreSQL) has its connection shut down, so whatever waits on it (the
    /// relayed login, or a pool's own) sees it close instead of waiting for ever.
    /// </summary>
    private void OnLoginDeadline()
    {
        if (Leg.LoggedIn || State.TransactionStatus != PgProxy.Protocol.TransactionStatus.Unknown)
        {
            return;
        }

        LoginTimedOut = true;
        TimeSpan timeout = environment.Instance.Limits.ServerLoginTimeout;
        Log.ServerLoginTimedOut(environment.Logger, sessionId, environment.Instance.Redirect.Name, timeout.TotalSeconds);
        Socket? current = Leg.Stream switch
        {
            LoopSocketStream loopStream => loopStream.Socket,
            NetworkStream network => network.Socket,
            _ => socket,
        };
        try
        {
            // Shutdown, not Dispose: a read in progress on the loop sees the end of the stream, as if the server closed.
            current?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed meanwhile.
        }
    }

    /// <summary>
    /// Sends the start-up packet and, when a leg is encrypted, takes part in authentication as far as it must (see
    /// <see cref="AuthenticationExchange"/>); the relay carries the rest of the login. A refusal is returned for the
    /// session to send, with the bytes the exchange wrote to the client.
    /// </summary>
    public async Task<(ExchangeOutcome Outcome, ProtocolError? Refusal, long BytesToClient)> LogInAsync(
        ClientConnection client, byte[] startupPacket, string user, string database, CancellationToken cancellationToken)
    {
        await Leg.Stream.WriteAsync(startupPacket, cancellationToken).ConfigureAwait(false);
        if (!client.Encrypted && !Leg.Encrypted)
        {
            return (ExchangeOutcome.Relay, null, 0);
        }

        InstanceConfig instance = environment.Instance;
        PlainTextFallback? fallback = security.Upstream.Mode == UpstreamTlsMode.Prefer
            ? new PlainTextFallback(
                token => UpstreamConnector.ConnectAsync(instance.Redirect, instance.Limits.ConnectTimeout, loop, token, instance.RedirectKeepalive),
                startupPacket,
                environment.ClaimPlainTextFallbackWarning)
            : null;
        var exchange = new AuthenticationExchange(
            client.Reader,
            client.Stream,
            Leg,
            security.Verifiers,
            fallback,
            new SessionIdentity(sessionId, user, database, environment.InstanceName, instance.Redirect.Name, UpstreamTls.Name(security.Upstream.Mode), environment.Logger));
        ExchangeOutcome outcome = await exchange.RunAsync(cancellationToken).ConfigureAwait(false);
        return (outcome, exchange.Refusal, exchange.BytesToClient);
    }

    /// <summary>Sends a CancelRequest to the server the same way as a session's connection, and waits for it to close.</summary>
    public static Task ForwardCancelAsync(SessionEnvironment environment, InstanceSecurity security, EventLoop? loop, long sessionId, StartupPacket cancel, string client) =>
        ForwardCancelAsync(environment, security, loop, sessionId, cancel.RawBytes, client);

    /// <summary>Sends a CancelRequest (the whole packet, <paramref name="cancelRequest"/>) and waits for the server to close.</summary>
    public static async Task ForwardCancelAsync(SessionEnvironment environment, InstanceSecurity security, EventLoop? loop, long sessionId, ReadOnlyMemory<byte> cancelRequest, string client)
    {
        string upstreamName = environment.Instance.Redirect.Name;
        try
        {
            using var deadline = new CancellationTokenSource(CancelWriteTimeout + environment.Instance.Limits.ConnectTimeout);
            (Stream stream, _, _, _) = await OpenAsync(environment, security, loop, sessionId, deadline.Token).ConfigureAwait(false);
            await using var owned = stream.ConfigureAwait(false);
            await stream.WriteAsync(cancelRequest, deadline.Token).ConfigureAwait(false);

            // PostgreSQL answers a cancel request by closing; waiting for that keeps the request from being cut short.
            byte[] probe = new byte[1];
            _ = await stream.ReadAsync(probe, deadline.Token).ConfigureAwait(false);
            Log.CancelForwarded(environment.Logger, sessionId, client, upstreamName);
        }
        catch (Exception e) when (e is UpstreamUnreachableException or IOException or SocketException or OperationCanceledException)
        {
            Log.CancelFailed(environment.Logger, sessionId, client, upstreamName, e.Message);
        }
    }

    /// <summary>
    /// Opens a TCP connection with the encryption <c>redirect.tls</c> asks for, within connect-timeout. A TLS failure
    /// is reported as the server being unreachable, with the reason (08001 to the client).
    /// </summary>
    private static async Task<(Stream Stream, bool Encrypted, Socket? Socket, long Connected)> OpenAsync(SessionEnvironment environment, InstanceSecurity security, EventLoop? loop, long sessionId, CancellationToken cancellationToken)
    {
        EndpointConfig redirect = environment.Instance.Redirect;
        TimeSpan timeout = environment.Instance.Limits.ConnectTimeout;
        Stream plain = await UpstreamConnector.ConnectAsync(redirect, timeout, loop, cancellationToken, environment.Instance.RedirectKeepalive).ConfigureAwait(false);
        long connected = Stopwatch.GetTimestamp();
        Socket? socket = plain switch
        {
            LoopSocketStream loopStream => loopStream.Socket,
            NetworkStream network => network.Socket,
            _ => null,
        };
        if (security.Upstream.Mode == UpstreamTlsMode.Disable)
        {
            return (plain, false, socket, connected);
        }

        // The negotiation is part of the login: server-login-timeout bounds it too, when it is the shorter.
        TimeSpan loginTimeout = environment.Instance.Limits.ServerLoginTimeout;
        string limit = loginTimeout < timeout ? "server-login-timeout" : "connect-timeout";
        timeout = loginTimeout < timeout ? loginTimeout : timeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            (Stream stream, bool encrypted) = await security.Upstream.NegotiateAsync(plain, redirect.Host, deadline.Token).ConfigureAwait(false);
            Log.UpstreamEncryption(environment.Logger, sessionId, redirect.Name, encrypted ? $"TLS ({((SslStream)stream).SslProtocol})" : "plain text");
            return (stream, encrypted, socket, connected);
        }
        catch (UpstreamTlsException e)
        {
            throw new UpstreamUnreachableException($"could not connect to upstream \"{redirect.Name}\" at {redirect.Host}:{redirect.Port}: {e.Message}", e);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamUnreachableException($"could not connect to upstream \"{redirect.Name}\" at {redirect.Host}:{redirect.Port}: SSL negotiation timed out after {timeout.TotalSeconds:0.###} s ({limit})");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (loginDeadline is { } timer)
        {
            await timer.DisposeAsync().ConfigureAwait(false);
        }

        await Leg.DisposeAsync().ConfigureAwait(false);
    }
}

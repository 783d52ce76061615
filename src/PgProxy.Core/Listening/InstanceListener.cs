using System.Net;
using System.Net.Sockets;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Interception;
using PgProxy.Core.Sessions;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Listening;

/// <summary>
/// The listening sockets of one instance and their accept loops. Each accepted connection becomes a
/// <see cref="ProxySession"/> run on its own; the listener tracks them so the server can drain them.
/// </summary>
internal sealed class InstanceListener : IAsyncDisposable
{
    private readonly SessionEnvironment environment;
    private readonly SessionRegistry sessions;
    private readonly List<Socket> sockets = [];
    private readonly List<Task> acceptLoops = [];
    private readonly CancellationTokenSource stopAccepting = new();
    private int activeSessions;

    public InstanceListener(SessionEnvironment environment, SessionRegistry sessions)
    {
        this.environment = environment;
        this.sessions = sessions;
    }

    /// <summary>The addresses actually bound (a configured port 0 is replaced by the one the system chose).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => sockets.Select(s => (IPEndPoint)s.LocalEndPoint!).ToList();

    public string InstanceName => environment.InstanceName;

    /// <summary>The interceptors new sessions of this instance get; replaced by a reload.</summary>
    public InstanceInterceptors Interceptors
    {
        get => environment.Interceptors;
        set => environment.Interceptors = value;
    }

    /// <summary>Certificates and verifiers new sessions of this instance get; replaced by a reload.</summary>
    public Tls.InstanceSecurity Security
    {
        get => environment.Security;
        set => environment.Security = value;
    }

    /// <summary>The upstream this instance relays to, as it started.</summary>
    public EndpointConfig Redirect => environment.Instance.Redirect;

    /// <summary>The limits this instance runs with, as it started.</summary>
    public InstanceLimits Limits => environment.Instance.Limits;

    /// <summary>Binds every address of the instance's <c>listen</c> host; throws if one cannot be bound.</summary>
    public async Task BindAsync(CancellationToken cancellationToken)
    {
        EndpointConfig listen = environment.Instance.Listen;
        int port = listen.Port;
        foreach (IPAddress address in await ResolveAsync(listen.Host, cancellationToken).ConfigureAwait(false))
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true;
                }

                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(address, port));
                socket.Listen(512);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new InvalidOperationException($"instance \"{listen.Name}\" cannot listen on {address}:{port}: {e.Message}", e);
            }

            // With port 0, every address of the host shares the port the system chose for the first.
            port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            sockets.Add(socket);
            Log.InstanceListening(environment.Logger, listen.Name, socket.LocalEndPoint!, environment.Instance.Redirect.Name, environment.Instance.Redirect.Host, environment.Instance.Redirect.Port);
        }
    }

    public void StartAccepting()
    {
        foreach (Socket socket in sockets)
        {
            acceptLoops.Add(AcceptLoopAsync(socket, stopAccepting.Token));
        }
    }

    /// <summary>Stops taking new connections; sessions already open go on.</summary>
    public async Task StopAcceptingAsync()
    {
        await stopAccepting.CancelAsync().ConfigureAwait(false);
        foreach (Socket socket in sockets)
        {
            socket.Dispose();
        }

        await Task.WhenAll(acceptLoops).ConfigureAwait(false);
        Log.InstanceStopped(environment.Logger, environment.InstanceName);
    }

    public async ValueTask DisposeAsync()
    {
        if (!stopAccepting.IsCancellationRequested)
        {
            await StopAcceptingAsync().ConfigureAwait(false);
        }

        stopAccepting.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listenSocket, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (cancellationToken.IsCancellationRequested || e.SocketErrorCode == SocketError.OperationAborted)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors and the like: keep serving once it passes.
                Log.AcceptFailed(environment.Logger, environment.InstanceName, e);
                continue;
            }

            _ = RunSessionAsync(client);
        }
    }

    private async Task RunSessionAsync(Socket client)
    {
        int limit = environment.Instance.Limits.MaxConnections;
        if (Interlocked.Increment(ref activeSessions) > limit && limit > 0)
        {
            Interlocked.Decrement(ref activeSessions);
            await RefuseTooManyAsync(client, limit).ConfigureAwait(false);
            return;
        }

        using var session = new ProxySession(sessions.NextId(), environment, client);
        sessions.Add(session);
        try
        {
            // Started on the accept loop's thread, not queued to the thread pool: the synchronous start is short (it
            // stops at the first read or the upstream connect that has to wait), and a hop per connection woke an
            // idle pool thread that then spun looking for more work, most of the proxy's CPU time under pgbench -C.
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            sessions.Remove(session);
            Interlocked.Decrement(ref activeSessions);
        }
    }

    private async Task RefuseTooManyAsync(Socket client, int limit)
    {
        Log.TooManyConnections(environment.Logger, environment.InstanceName, client.RemoteEndPoint, limit);
        environment.Metrics.ClientError(environment.InstanceName, SqlStates.TooManyConnections);
        using (client)
        {
            try
            {
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.SendAsync(ErrorResponseWriter.Build(ErrorSeverity.Fatal, SqlStates.TooManyConnections, "sorry, too many clients already"), SocketFlags.None, deadline.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                // The client is gone already.
            }
        }
    }

    private static async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        if (host == "*")
        {
            return [IPAddress.IPv6Any];
        }

        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return [address];
        }

        IPAddress[] addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return addresses.Length > 0 ? addresses.Distinct().ToArray() : throw new InvalidOperationException($"listen host \"{host}\" resolves to no address");
    }
}

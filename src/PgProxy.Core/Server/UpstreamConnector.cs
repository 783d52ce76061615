using System.Net;
using System.Net.Sockets;
using PgProxy.Core.Configuration;
using PgProxy.Core.Transport;

namespace PgProxy.Core.Server;

/// <summary>The upstream could not be reached; the message says why, for the client and the log.</summary>
internal sealed class UpstreamUnreachableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Opens TCP connections to an instance's upstream PostgreSQL.</summary>
internal static class UpstreamConnector
{
    /// <summary>
    /// Connects within <paramref name="timeout"/>, trying every address the host resolves to. With a
    /// <paramref name="loop"/>, the socket is that loop's (the session's other socket is on it too); without, it is a
    /// <see cref="NetworkStream"/> on .NET's socket engine. The stream owns the socket.
    /// </summary>
    /// <exception cref="UpstreamUnreachableException">Refused, unresolvable or timed out.</exception>
    public static async Task<Stream> ConnectAsync(EndpointConfig upstream, TimeSpan timeout, EventLoop? loop, CancellationToken cancellationToken, KeepaliveConfig? keepalive = null)
    {
        keepalive ??= KeepaliveConfig.SystemDefault;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return loop is null
                ? await ConnectWithSocketEngineAsync(upstream, keepalive, deadline.Token).ConfigureAwait(false)
                : await ConnectOnLoopAsync(upstream, keepalive, loop, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamUnreachableException(Describe(upstream, $"timed out after {timeout.TotalSeconds:0.###} s"));
        }
        catch (SocketException e)
        {
            throw new UpstreamUnreachableException(Describe(upstream, e.Message), e);
        }
    }

    private static async Task<Stream> ConnectWithSocketEngineAsync(EndpointConfig upstream, KeepaliveConfig keepalive, CancellationToken cancellationToken)
    {
        // An address gets a socket of its own family; a host name, a dual-mode socket that can reach whichever
        // address it resolves to. Dual mode costs four more system calls per connection (IPV6_V6ONLY set and read).
        EndPoint endpoint;
        Socket socket;
        if (IPAddress.TryParse(upstream.Host, out IPAddress? address))
        {
            endpoint = new IPEndPoint(address, upstream.Port);
            socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        }
        else
        {
            endpoint = new DnsEndPoint(upstream.Host, upstream.Port);
            socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        }

        try
        {
            SocketKeepalive.Apply(socket, keepalive);
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A non-blocking connect completed by the loop, so .NET's socket engine never watches the socket.</summary>
    private static async Task<Stream> ConnectOnLoopAsync(EndpointConfig upstream, KeepaliveConfig keepalive, EventLoop loop, CancellationToken cancellationToken)
    {
        IPAddress[] addresses = IPAddress.TryParse(upstream.Host, out IPAddress? address)
            ? [address]
            : await Dns.GetHostAddressesAsync(upstream.Host, cancellationToken).ConfigureAwait(false);
        SocketException? lastFailure = null;
        foreach (IPAddress candidate in addresses)
        {
            var socket = new Socket(candidate.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, Blocking = false };
            LoopSocketStream? stream = null;
            try
            {
                bool inProgress = false;
                SocketKeepalive.Apply(socket, keepalive);
                try
                {
                    socket.Connect(new IPEndPoint(candidate, upstream.Port));
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                    inProgress = true;
                }

                stream = new LoopSocketStream(socket, loop);
                if (inProgress)
                {
                    await stream.CompleteConnectAsync(cancellationToken).ConfigureAwait(false);
                }

                return stream;
            }
            catch (SocketException e)
            {
                lastFailure = e;
            }
            catch (IOException e) when (e.InnerException is SocketException inner)
            {
                lastFailure = inner;
            }
            catch
            {
                DisposeAttempt(stream, socket);
                throw;
            }

            DisposeAttempt(stream, socket);
        }

        throw lastFailure ?? new SocketException((int)SocketError.HostNotFound);
    }

    private static void DisposeAttempt(LoopSocketStream? stream, Socket socket)
    {
        if (stream is not null)
        {
            stream.Dispose();
        }
        else
        {
            socket.Dispose();
        }
    }

    private static string Describe(EndpointConfig upstream, string reason) =>
        $"could not connect to upstream \"{upstream.Name}\" at {upstream.Host}:{upstream.Port}: {reason}";
}

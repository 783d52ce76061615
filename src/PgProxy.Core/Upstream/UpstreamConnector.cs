using System.Net;
using System.Net.Sockets;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Upstream;

/// <summary>The upstream could not be reached; the message says why, for the client and the log.</summary>
internal sealed class UpstreamUnreachableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Opens TCP connections to an instance's upstream PostgreSQL.</summary>
internal static class UpstreamConnector
{
    /// <summary>Connects within <paramref name="timeout"/>, trying every address the host resolves to.</summary>
    /// <exception cref="UpstreamUnreachableException">Refused, unresolvable or timed out.</exception>
    public static async Task<Socket> ConnectAsync(EndpointConfig upstream, TimeSpan timeout, CancellationToken cancellationToken)
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

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endpoint, deadline.Token).ConfigureAwait(false);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new UpstreamUnreachableException(Describe(upstream, $"timed out after {timeout.TotalSeconds:0.###} s"));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new UpstreamUnreachableException(Describe(upstream, e.Message), e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static string Describe(EndpointConfig upstream, string reason) =>
        $"could not connect to upstream \"{upstream.Name}\" at {upstream.Host}:{upstream.Port}: {reason}";
}

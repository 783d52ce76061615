using System.Net.Sockets;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Transport;

/// <summary>TCP keepalive on a connection's socket, as <c>listen.keepalive</c> or <c>redirect.keepalive</c> asks.</summary>
internal static class SocketKeepalive
{
    /// <summary>
    /// Turns SO_KEEPALIVE on, and sets each timing the configuration gives (the system's otherwise). A peer whose host
    /// is gone, or a network that drops everything, is then noticed within idle + interval × count of silence; a peer
    /// process that is only stopped (SIGSTOP) is not, since its kernel still answers the probes.
    /// </summary>
    public static void Apply(Socket socket, KeepaliveConfig keepalive)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        if (keepalive.Idle is { } idle)
        {
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)idle.TotalSeconds);
        }

        if (keepalive.Interval is { } interval)
        {
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, (int)interval.TotalSeconds);
        }

        if (keepalive.Count is { } count)
        {
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, count);
        }
    }
}

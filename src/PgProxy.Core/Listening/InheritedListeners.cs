using System.Net.Sockets;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Listening;

/// <summary>
/// Listening sockets a new process got from the one it takes over from (<c>pgproxy --takeover</c>), by the key of the
/// listener that had them. A listener whose key is here accepts on them instead of binding its address, so no
/// connection queued on them is lost; what no listener takes is closed when the start is over.
/// </summary>
public sealed class InheritedListeners : IDisposable
{
    private readonly Dictionary<string, List<Socket>> sockets = new(StringComparer.Ordinal);

    public InheritedListeners(IEnumerable<(string Key, Socket Socket)> sockets)
    {
        ArgumentNullException.ThrowIfNull(sockets);
        foreach ((string key, Socket socket) in sockets)
        {
            if (!this.sockets.TryGetValue(key, out List<Socket>? list))
            {
                this.sockets[key] = list = [];
            }

            list.Add(socket);
        }
    }

    /// <summary>How many sockets were handed over and not yet taken.</summary>
    public int Count => sockets.Values.Sum(list => list.Count);

    /// <summary>
    /// The key of a listener: what it serves and the address configured (not the one bound), so that the new process
    /// finds the sockets of the listener the same configuration gave the old one.
    /// </summary>
    public static string KeyOf(EndpointConfig listen, bool console)
    {
        ArgumentNullException.ThrowIfNull(listen);
        return console
            ? $"admin.listen {listen.Host}:{listen.Port}"
            : $"instance {listen.Name} {listen.Host}:{listen.Port}";
    }

    /// <summary>Takes the sockets handed over for <paramref name="key"/>, if any.</summary>
    internal bool TryTake(string key, out List<Socket> taken)
    {
        lock (sockets)
        {
            return sockets.Remove(key, out taken!);
        }
    }

    /// <summary>Closes the sockets no listener took (an address the new configuration no longer has).</summary>
    public void Dispose()
    {
        lock (sockets)
        {
            foreach (Socket socket in sockets.Values.SelectMany(list => list))
            {
                socket.Dispose();
            }

            sockets.Clear();
        }
    }
}

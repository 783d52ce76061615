using System.Net.Sockets;

namespace PgProxy.Core.Transport;

/// <summary>Writes of the proxy's own last words (an error, a Terminate) to a peer that may be gone or stalled.</summary>
internal static class BoundedWrites
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>Writes within a few seconds, or not at all: the connection is being closed anyway.</summary>
    public static async Task TryWriteAsync(Stream stream, ReadOnlyMemory<byte> message)
    {
        try
        {
            using var deadline = new CancellationTokenSource(Timeout);
            await stream.WriteAsync(message, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer is gone or stalled.
        }
    }
}

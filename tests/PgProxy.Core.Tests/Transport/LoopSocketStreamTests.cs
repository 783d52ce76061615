using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using PgProxy.Core.Configuration;
using PgProxy.Core.Transport;
using PgProxy.Core.Server;

namespace PgProxy.Core.Tests.Transport;

/// <summary>
/// The event-loop socket stream over real loopback TCP connections: data arrives whole and in order whatever the
/// timing, waits end on data, close, cancellation or disposal, and a connect is completed by the loop.
/// </summary>
public sealed class LoopSocketStreamTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly Lazy<EventLoop> SharedLoop = new(() => EventLoop.Start("PgProxy test loop"));

    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private Socket? peer;
    private LoopSocketStream? stream;

    private Socket Peer => peer!;

    private LoopSocketStream Stream => stream!;

    public async Task InitializeAsync()
    {
        listener.Start();
        var connecting = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Task<Socket> accepting = listener.AcceptSocketAsync();
        await connecting.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        peer = await accepting.WaitAsync(Deadline);
        stream = new LoopSocketStream(connecting, SharedLoop.Value);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        stream?.Dispose();
        peer?.Dispose();
        listener.Dispose();
    }

    [Fact]
    public async Task Bytes_sent_by_the_peer_are_read_and_bytes_written_reach_it()
    {
        await Peer.SendAsync("hello"u8.ToArray());
        byte[] buffer = new byte[64];
        int read = await ReadAtLeastAsync(buffer, 5);
        Assert.Equal("hello"u8.ToArray(), buffer[..read]);

        await Stream.WriteAsync("world"u8.ToArray());
        byte[] received = new byte[5];
        await ReceiveExactlyAsync(Peer, received);
        Assert.Equal("world"u8.ToArray(), received);
    }

    [Fact]
    public async Task A_read_waiting_for_data_completes_when_it_arrives()
    {
        byte[] buffer = new byte[16];
        ValueTask<int> pending = Stream.ReadAsync(buffer);
        Assert.False(pending.IsCompleted, "nothing was sent yet");

        await Peer.SendAsync(new byte[] { 1, 2, 3 });
        int read = await pending.AsTask().WaitAsync(Deadline);
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer[..read]);
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_consumes_nothing()
    {
        // Leave the "maybe readable" state the stream starts in: a read shorter than its buffer drains the socket.
        Task<int> zero = Stream.ReadAsync(Memory<byte>.Empty).AsTask();
        if (zero.IsCompleted)
        {
            Assert.Equal(0, await zero);
            Task<int> probe = Stream.ReadAsync(new byte[8]).AsTask();
            await Peer.SendAsync(new byte[] { 7 });
            Assert.Equal(1, await probe.WaitAsync(Deadline));
            zero = Stream.ReadAsync(Memory<byte>.Empty).AsTask();
        }

        Assert.False(zero.IsCompleted, "nothing is waiting to be read");
        await Peer.SendAsync(new byte[] { 9, 8 });
        Assert.Equal(0, await zero.WaitAsync(Deadline));

        byte[] buffer = new byte[4];
        int read = await ReadAtLeastAsync(buffer, 2);
        Assert.Equal(new byte[] { 9, 8 }, buffer[..read]);
    }

    [Fact]
    public async Task Megabytes_cross_both_ways_at_once_intact()
    {
        // Far more than a socket buffer holds, so sends fill it and wait for the loop, while reads drain the other way.
        byte[] outgoing = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        byte[] incoming = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);

        Task write = Stream.WriteAsync(outgoing).AsTask();
        Task send = Peer.SendAsync(incoming);
        byte[] receivedByPeer = new byte[outgoing.Length];
        Task receive = ReceiveExactlyAsync(Peer, receivedByPeer);
        byte[] readByStream = new byte[incoming.Length];
        int total = 0;
        while (total < readByStream.Length)
        {
            int read = await Stream.ReadAsync(readByStream.AsMemory(total, Math.Min(65536, readByStream.Length - total))).AsTask().WaitAsync(Deadline);
            Assert.True(read > 0, "the peer did not close");
            total += read;
        }

        await Task.WhenAll(write, send, receive).WaitAsync(Deadline);
        Assert.Equal(SHA256.HashData(outgoing), SHA256.HashData(receivedByPeer));
        Assert.Equal(SHA256.HashData(incoming), SHA256.HashData(readByStream));
    }

    [Fact]
    public async Task The_peer_closing_reads_as_the_end_of_the_stream_every_time()
    {
        await Peer.SendAsync(new byte[] { 5 });
        Peer.Shutdown(SocketShutdown.Send);

        byte[] buffer = new byte[8];
        Assert.Equal(1, await Stream.ReadAsync(buffer).AsTask().WaitAsync(Deadline));
        Assert.Equal(0, await Stream.ReadAsync(buffer).AsTask().WaitAsync(Deadline));
        Assert.Equal(0, await Stream.ReadAsync(buffer).AsTask().WaitAsync(Deadline));
    }

    [Fact]
    public async Task A_cancelled_read_throws_and_the_next_read_gets_every_byte()
    {
        using var cancellation = new CancellationTokenSource();
        byte[] buffer = new byte[8];
        ValueTask<int> pending = Stream.ReadAsync(buffer, cancellation.Token);
        Assert.False(pending.IsCompleted);

        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.AsTask().WaitAsync(Deadline));

        await Peer.SendAsync(new byte[] { 1, 2 });
        int read = await ReadAtLeastAsync(buffer, 2);
        Assert.Equal(new byte[] { 1, 2 }, buffer[..read]);
    }

    [Fact]
    public async Task Disposing_ends_a_waiting_read()
    {
        ValueTask<int> pending = Stream.ReadAsync(new byte[8]);
        Assert.False(pending.IsCompleted);

        await Stream.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.AsTask().WaitAsync(Deadline));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Stream.ReadAsync(new byte[8]).AsTask());
    }

    [Fact]
    public async Task A_peek_leaves_the_bytes_for_the_next_read()
    {
        byte[] first = new byte[1];
        ValueTask<int> peek = Stream.PeekAsync(first, CancellationToken.None);
        await Peer.SendAsync(new byte[] { 0x16, 3, 1 });
        Assert.Equal(1, await peek.AsTask().WaitAsync(Deadline));
        Assert.Equal(0x16, first[0]);

        byte[] buffer = new byte[8];
        int read = await ReadAtLeastAsync(buffer, 3);
        Assert.Equal(new byte[] { 0x16, 3, 1 }, buffer[..read]);
    }

    [Fact]
    public async Task Writing_to_a_reset_connection_fails_with_an_IOException()
    {
        Peer.LingerState = new LingerOption(true, 0); // close sends RST
        Peer.Close();
        byte[] buffer = new byte[8];
        await Assert.ThrowsAsync<IOException>(async () =>
        {
            // The reset arrives asynchronously: keep writing until the socket reports it.
            for (int i = 0; i < 1000; i++)
            {
                await Stream.WriteAsync(new byte[1024]).AsTask().WaitAsync(Deadline);
                _ = await Stream.ReadAsync(buffer).AsTask().WaitAsync(Deadline);
            }
        });
    }

    [Fact]
    public async Task Synchronous_reads_and_writes_wait_without_the_loop()
    {
        Task reading = Task.Run(() =>
        {
            byte[] buffer = new byte[4];
            int read = Stream.Read(buffer, 0, buffer.Length);
            return buffer[..read];
        });
        await Peer.SendAsync(new byte[] { 4, 2 });
        Assert.Equal(new byte[] { 4, 2 }, await ((Task<byte[]>)reading).WaitAsync(Deadline));

        Stream.Write([6, 7], 0, 2);
        byte[] received = new byte[2];
        await ReceiveExactlyAsync(Peer, received);
        Assert.Equal(new byte[] { 6, 7 }, received);
    }

    [Fact]
    public async Task An_upstream_connect_on_a_loop_reaches_a_listener_by_host_name()
    {
        var upstream = new EndpointConfig("test", "localhost", ((IPEndPoint)listener.LocalEndpoint).Port);
        Task<Socket> accepting = listener.AcceptSocketAsync();
        await using Stream connected = await UpstreamConnector.ConnectAsync(upstream, Deadline, SharedLoop.Value, CancellationToken.None);
        using Socket accepted = await accepting.WaitAsync(Deadline);

        await connected.WriteAsync("ping"u8.ToArray());
        byte[] received = new byte[4];
        await ReceiveExactlyAsync(accepted, received);
        Assert.Equal("ping"u8.ToArray(), received);
    }

    [Fact]
    public async Task An_upstream_connect_on_a_loop_to_a_closed_port_is_refused()
    {
        using var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        int port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();

        var upstream = new EndpointConfig("test", "127.0.0.1", port);
        UpstreamUnreachableException refused = await Assert.ThrowsAsync<UpstreamUnreachableException>(
            () => UpstreamConnector.ConnectAsync(upstream, Deadline, SharedLoop.Value, CancellationToken.None));
        Assert.Contains("refused", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"127.0.0.1:{port}", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_upstream_connect_on_a_loop_that_gets_no_answer_times_out()
    {
        // A listener whose accept queue is full drops new SYNs, so a further connect gets no answer at all.
        using var full = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        full.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        full.Listen(1);
        var port = ((IPEndPoint)full.LocalEndPoint!).Port;
        var queued = new List<Stream>();
        try
        {
            var upstream = new EndpointConfig("test", "127.0.0.1", port);
            UpstreamUnreachableException? timedOut = null;
            for (int attempt = 0; attempt < 8 && timedOut is null; attempt++)
            {
                try
                {
                    Stream connected = await UpstreamConnector.ConnectAsync(upstream, TimeSpan.FromMilliseconds(300), SharedLoop.Value, CancellationToken.None);
                    queued.Add(connected); // taken into the accept queue
                }
                catch (UpstreamUnreachableException e)
                {
                    timedOut = e;
                }
            }

            Assert.NotNull(timedOut);
            Assert.Contains("timed out after 0.3 s", timedOut.Message, StringComparison.Ordinal);
        }
        finally
        {
            queued.ForEach(stream => stream.Dispose());
        }
    }

    private async Task<int> ReadAtLeastAsync(byte[] buffer, int count)
    {
        int total = 0;
        while (total < count)
        {
            int read = await Stream.ReadAsync(buffer.AsMemory(total)).AsTask().WaitAsync(Deadline);
            Assert.True(read > 0, "the stream ended early");
            total += read;
        }

        return total;
    }

    private static async Task ReceiveExactlyAsync(Socket socket, byte[] buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int received = await socket.ReceiveAsync(buffer.AsMemory(total)).AsTask().WaitAsync(Deadline);
            Assert.True(received > 0, "the connection ended early");
            total += received;
        }
    }
}

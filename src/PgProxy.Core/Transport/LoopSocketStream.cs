using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PgProxy.Core.Transport;

/// <summary>
/// A connected TCP socket driven by an <see cref="EventLoop"/>: the stream sessions read and write instead of a
/// <see cref="NetworkStream"/>. A receive is attempted only while the socket may have data (since the last
/// readiness event, or after a read that filled the buffer), a send is attempted at once and waits for the loop
/// only when the socket's buffer is full. Owns the socket.
/// </summary>
internal sealed class LoopSocketStream : Stream
{
    private const uint ReadEvents = LinuxSockets.EpollIn | LinuxSockets.EpollRdHup | LinuxSockets.EpollHup | LinuxSockets.EpollErr;
    private const uint WriteEvents = LinuxSockets.EpollOut | LinuxSockets.EpollHup | LinuxSockets.EpollErr;

    private readonly Socket socket;
    private readonly SafeSocketHandle handle;
    private readonly EventLoop loop;
    private readonly ReadinessWaiter readWaiter = new();
    private readonly ReadinessWaiter writeWaiter = new();

    // Readiness as event counts: readable while readEvents differs from the count at which a receive found the
    // socket drained. Starts readable (data may have arrived before registration), and so for writing.
    private int readEvents = 1;
    private int readDrainedAt;
    private int writeEvents = 1;
    private int peerClosed; // the loop saw the peer's FIN, a reset or an error: reads never wait again
    private int disposed;

    public LoopSocketStream(Socket socket, EventLoop loop)
    {
        this.socket = socket;
        this.loop = loop;
        socket.Blocking = false;
        handle = socket.SafeHandle;
        Key = loop.Register(this, handle);
    }

    /// <summary>The socket's key in its loop's table.</summary>
    internal ulong Key { get; set; }

    /// <summary>The socket, for options and shutdown; reads and writes go through the stream.</summary>
    public Socket Socket => socket;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>Called on the loop's thread for each event of this socket.</summary>
    internal void OnReady(uint events)
    {
        if ((events & ReadEvents) != 0)
        {
            // Before the count: a reader that sees the new count also sees the flag.
            if ((events & (LinuxSockets.EpollRdHup | LinuxSockets.EpollHup | LinuxSockets.EpollErr)) != 0)
            {
                Volatile.Write(ref peerClosed, 1);
            }

            Interlocked.Increment(ref readEvents);
            readWaiter.Signal();
        }

        if ((events & WriteEvents) != 0)
        {
            Interlocked.Increment(ref writeEvents);
            writeWaiter.Signal();
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        int observed = Volatile.Read(ref readEvents);
        if (observed != readDrainedAt)
        {
            // A zero-byte read asks only "is there data?": the caller then reads with a buffer it rents for that.
            if (buffer.Length == 0)
            {
                return new ValueTask<int>(0);
            }

            int received = TryReceive(buffer.Span, observed, 0);
            if (received >= 0)
            {
                return new ValueTask<int>(received);
            }
        }

        return ReceiveWhenReadyAsync(buffer, 0, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Waits for data and copies it without consuming it.</summary>
    public ValueTask<int> PeekAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        return ReceiveWhenReadyAsync(buffer, LinuxSockets.MsgPeek, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReceiveWhenReadyAsync(Memory<byte> buffer, int flags, CancellationToken cancellationToken)
    {
        while (true)
        {
            int observed = Volatile.Read(ref readEvents);
            if (observed != readDrainedAt)
            {
                if (buffer.Length == 0)
                {
                    return 0;
                }

                int received = TryReceive(buffer.Span, observed, flags);
                if (received >= 0)
                {
                    return received;
                }

                continue;
            }

            await readWaiter.WaitAsync(ref readEvents, observed, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>One recv: the count received (0 at end of stream), or -1 when there is nothing yet.</summary>
    private unsafe int TryReceive(Span<byte> buffer, int observed, int flags)
    {
        nint received;
        fixed (byte* bytes = buffer)
        {
            received = LinuxSockets.Receive(handle, bytes, buffer.Length, flags);
        }

        if (received >= 0)
        {
            // A short read emptied the socket: the next data raises a new edge. A full one may have left more behind.
            // Once the peer has closed there is no next edge, and the end of the stream must stay readable.
            if (received > 0 && received < buffer.Length && (flags & LinuxSockets.MsgPeek) == 0 && Volatile.Read(ref peerClosed) == 0)
            {
                readDrainedAt = observed;
            }

            return (int)received;
        }

        int errno = Marshal.GetLastPInvokeError();
        if (errno == LinuxSockets.EAgain)
        {
            // Never after the peer's FIN (recv then returns 0), so this cannot hide the end of the stream.
            readDrainedAt = observed;
            return -1;
        }

        if (errno == LinuxSockets.EIntr)
        {
            return -1;
        }

        throw LinuxSockets.Failure(errno, "read data from");
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        int sent = TrySend(buffer.Span, out int observed);
        return sent == buffer.Length ? default : SendWhenReadyAsync(buffer[sent..], observed, cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendWhenReadyAsync(ReadOnlyMemory<byte> rest, int observed, CancellationToken cancellationToken)
    {
        while (true)
        {
            await writeWaiter.WaitAsync(ref writeEvents, observed, cancellationToken).ConfigureAwait(false);
            int sent = TrySend(rest.Span, out observed);
            if (sent == rest.Length)
            {
                return;
            }

            rest = rest[sent..];
        }
    }

    /// <summary>Sends until done or the socket's buffer is full; returns how much was sent and the event count seen before the last try.</summary>
    private unsafe int TrySend(ReadOnlySpan<byte> buffer, out int observed)
    {
        int total = 0;
        while (true)
        {
            observed = Volatile.Read(ref writeEvents);
            if (total == buffer.Length)
            {
                return total;
            }

            nint sent;
            fixed (byte* bytes = buffer[total..])
            {
                sent = LinuxSockets.Send(handle, bytes, buffer.Length - total, LinuxSockets.MsgNoSignal);
            }

            if (sent >= 0)
            {
                total += (int)sent;
                continue;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == LinuxSockets.EAgain)
            {
                return total;
            }

            if (errno != LinuxSockets.EIntr)
            {
                throw LinuxSockets.Failure(errno, "write data to");
            }
        }
    }

    /// <summary>Completes a non-blocking connect: waits until the socket is writable, then reads its error.</summary>
    public async ValueTask CompleteConnectAsync(CancellationToken cancellationToken)
    {
        // A connecting socket reports nothing until it connects or fails, so the first event since registration
        // (whatever the count was at registration) is the answer.
        const int CountAtRegistration = 1;
        await writeWaiter.WaitAsync(ref writeEvents, CountAtRegistration, cancellationToken).ConfigureAwait(false);
        int error = (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
        if (error != 0)
        {
            // SO_ERROR reports a portable SocketError code through .NET.
            throw new SocketException(error);
        }
    }

    // Synchronous reads and writes are for callers that only know Stream's blocking surface (none on the session's
    // path); they wait with poll(2) so they never depend on the loop, whose thread they may be running on.
    public override int Read(Span<byte> buffer)
    {
        while (true)
        {
            int observed = Volatile.Read(ref readEvents);
            int received = TryReceive(buffer, observed, 0);
            if (received >= 0)
            {
                return received;
            }

            WaitWithPoll(LinuxSockets.PollIn);
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        int sent = TrySend(buffer, out _);
        while (sent < buffer.Length)
        {
            WaitWithPoll(LinuxSockets.PollOut);
            sent += TrySend(buffer[sent..], out _);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    private unsafe void WaitWithPoll(short events)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            var descriptor = new LinuxSockets.PollDescriptor { Fd = (int)handle.DangerousGetHandle(), Events = events };
            if (LinuxSockets.Poll(&descriptor, 1, -1) < 0 && Marshal.GetLastPInvokeError() is int errno && errno != LinuxSockets.EIntr)
            {
                throw LinuxSockets.Failure(errno, "wait on");
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref disposed, 1) == 0)
        {
            loop.Unregister(Key, handle);
            readWaiter.Close();
            writeWaiter.Close();
            socket.Dispose();
        }

        base.Dispose(disposing);
    }
}

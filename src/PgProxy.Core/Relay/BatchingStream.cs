using System.Buffers;

namespace PgProxy.Core.Relay;

/// <summary>
/// Collects what a pump with a frame handler writes during one read batch (forwarded slices and the handler's
/// messages alike) and sends it in one write, so interception adds no system call per message. Used only by pumps
/// that have a handler: pass-through pumps write their slices straight to the socket.
/// </summary>
internal sealed class BatchingStream(Stream inner) : Stream
{
    /// <summary>Where the collected bytes go; transaction pooling points it at each server connection in turn.</summary>
    public Stream Inner { get; set; } = inner;

    private const int RetainedCapacity = 256 * 1024;
    private ArrayBufferWriter<byte> pending = new(16 * 1024);

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>True when nothing is waiting to be sent.</summary>
    public bool IsEmpty => pending.WrittenCount == 0;

    /// <summary>Sends what was collected, if anything.</summary>
    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (pending.WrittenCount == 0)
        {
            return;
        }

        await Inner.WriteAsync(pending.WrittenMemory, cancellationToken).ConfigureAwait(false);

        // A batch that carried a large message does not keep its buffer for the rest of the session.
        if (pending.Capacity > RetainedCapacity)
        {
            pending = new ArrayBufferWriter<byte>(16 * 1024);
        }
        else
        {
            pending.ResetWrittenCount();
        }
    }

    public override void Flush()
    {
        // Pumps flush asynchronously; this is for callers that only know Stream's synchronous surface.
        Inner.Write(pending.WrittenSpan);
        pending.ResetWrittenCount();
    }

    public override void Write(ReadOnlySpan<byte> buffer) => pending.Write(buffer);

    public override void Write(byte[] buffer, int offset, int count) => pending.Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        pending.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        pending.Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

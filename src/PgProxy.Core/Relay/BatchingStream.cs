using System.Buffers;

namespace PgProxy.Core.Relay;

/// <summary>
/// Collects what a pump with a frame handler writes during one read batch (forwarded slices and the handler's
/// messages alike) and sends it in one write, so interception adds no system call per message. Used only by pumps
/// that have a handler: pass-through pumps write their slices straight to the socket. The buffer is rented for the
/// batch and given back when it is sent, so an idle session holds none (10,000 idle pooled clients would otherwise
/// keep 32 KiB each).
/// </summary>
internal sealed class BatchingStream(Stream inner) : Stream
{
    private const int InitialCapacity = 16 * 1024;
    private byte[]? buffer;
    private int written;

    /// <summary>Where the collected bytes go; transaction pooling points it at each server connection in turn.</summary>
    public Stream Inner { get; set; } = inner;

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
    public bool IsEmpty => written == 0;

    /// <summary>Sends what was collected, if anything, and gives the buffer back.</summary>
    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (written == 0)
        {
            return;
        }

        try
        {
            await Inner.WriteAsync(buffer.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Release();
        }
    }

    public override void Flush()
    {
        // Pumps flush asynchronously; this is for callers that only know Stream's synchronous surface.
        if (written > 0)
        {
            Inner.Write(buffer.AsSpan(0, written));
        }

        Release();
    }

    public override void Write(ReadOnlySpan<byte> data)
    {
        if (buffer is null || buffer.Length - written < data.Length)
        {
            Grow(data.Length);
        }

        data.CopyTo(buffer.AsSpan(written));
        written += data.Length;
    }

    public override void Write(byte[] data, int offset, int count) => Write(data.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Write(data.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] data, int offset, int count, CancellationToken cancellationToken)
    {
        Write(data.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Release();
        base.Dispose(disposing);
    }

    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(buffer))]
    private void Grow(int more)
    {
        byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(InitialCapacity, checked((written + more) * 2)));
        if (buffer is not null)
        {
            buffer.AsSpan(0, written).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(buffer);
        }

        buffer = larger;
    }

    private void Release()
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
        }

        written = 0;
    }
}

using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Relay;
using PgProxy.Core.Server;

namespace PgProxy.Core.Tests.Relay;

/// <summary>What a pump with a frame handler writes during a batch reaches the socket in one write, at flush.</summary>
public sealed class BatchingStreamTests : IDisposable
{
    private readonly RecordingStream inner = new();

    public void Dispose() => inner.Dispose();

    [Fact]
    public async Task Writes_of_every_kind_are_collected_and_sent_in_one_write_at_flush()
    {
        var batching = new BatchingStream(inner);

        batching.Write("Q"u8);
        batching.Write([0, 1, 2, 3, 4], 1, 3);
        await batching.WriteAsync("ab"u8.ToArray());
#pragma warning disable CA1835 // The array overload is part of what the pumps' handlers may call.
        await batching.WriteAsync([9, 8, 7, 6], 2, 2);
#pragma warning restore CA1835
        Assert.Empty(inner.Writes);

        await batching.FlushAsync();

        byte[] expected = [(byte)'Q', 1, 2, 3, (byte)'a', (byte)'b', 7, 6];
        Assert.Equal([expected], inner.Writes);
    }

    [Fact]
    public async Task An_empty_flush_sends_nothing()
    {
        var batching = new BatchingStream(inner);

        await batching.FlushAsync();
        batching.Write(ReadOnlySpan<byte>.Empty);
        await batching.FlushAsync();

        Assert.Empty(inner.Writes);
    }

    [Fact]
    public async Task A_flush_after_a_flush_sends_only_what_was_written_since()
    {
        var batching = new BatchingStream(inner);

        batching.Write("first"u8);
        await batching.FlushAsync();
        await batching.FlushAsync();
        batching.Write("second"u8);
        await batching.FlushAsync();

        Assert.Equal(["first"u8.ToArray(), "second"u8.ToArray()], inner.Writes);
    }

    [Fact]
    public async Task A_large_batch_goes_out_in_one_write_and_the_next_batch_is_not_mixed_with_it()
    {
        var batching = new BatchingStream(inner);

        // A megabyte in 4 KB pieces (a batch that carried a large DataRow), then a small batch after it.
        byte[] large = [.. Enumerable.Range(0, 1 << 20).Select(i => (byte)(i % 251))];
        for (int at = 0; at < large.Length; at += 4096)
        {
            await batching.WriteAsync(large.AsMemory(at, 4096));
        }

        await batching.FlushAsync();
        batching.Write("Z\0\0\0\u0005I"u8);
        await batching.FlushAsync();

        Assert.Equal(2, inner.Writes.Count);
        Assert.Equal(large, inner.Writes[0]);
        Assert.Equal("Z\0\0\0\u0005I"u8.ToArray(), inner.Writes[1]);
    }

    [Fact]
    public void The_synchronous_flush_sends_the_batch_in_one_write_too()
    {
        var batching = new BatchingStream(inner);

        batching.Write("one "u8);
        batching.Write("two"u8);
        batching.Flush();
        batching.Write("three"u8);
        batching.Flush();

        Assert.Equal(["one two"u8.ToArray(), "three"u8.ToArray()], inner.Writes);
    }

    [Fact]
    public async Task A_failing_socket_surfaces_as_the_io_exception_the_pump_turns_into_a_destination_failure()
    {
        var failure = new IOException("connection reset by peer");
        var batching = new BatchingStream(new RecordingStream { Failure = failure });

        batching.Write("Q"u8);

        IOException thrown = await Assert.ThrowsAsync<IOException>(() => batching.FlushAsync());
        Assert.Same(failure, thrown);
    }

    [Fact]
    public async Task A_pump_with_a_handler_stops_as_destination_failed_when_its_batch_cannot_be_sent()
    {
        var pipe = new Pipe();
        var pump = new ForwardingPump(
            pipe.Reader,
            new RecordingStream { Failure = new IOException("broken pipe") },
            new ServerProtocolState(),
            PumpDirection.ClientToServer,
            maxMessageSize: 1 << 20,
            [new PassingHandler()]);
        Task<PumpStop> pumping = pump.RunAsync(CancellationToken.None);

        await pipe.Writer.WriteAsync("Q\0\0\0\u000dSELECT 1\0"u8.ToArray());

        Assert.Equal(PumpStop.DestinationFailed, await pumping.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_closed_socket_surfaces_as_object_disposed()
    {
        var closed = new RecordingStream();
        closed.Dispose();
        var batching = new BatchingStream(closed);

        batching.Write("Q"u8);

        await Assert.ThrowsAsync<ObjectDisposedException>(() => batching.FlushAsync());
    }

    [Fact]
    public async Task A_cancelled_flush_surfaces_as_cancellation()
    {
        var batching = new BatchingStream(inner);
        batching.Write("Q"u8);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => batching.FlushAsync(new CancellationToken(canceled: true)));
        Assert.Empty(inner.Writes);
    }

    [Fact]
    public void The_stream_only_writes()
    {
        var batching = new BatchingStream(inner);

        Assert.True(batching.CanWrite);
        Assert.False(batching.CanRead);
        Assert.False(batching.CanSeek);
        Assert.Throws<NotSupportedException>(() => batching.Read(new byte[1], 0, 1));
        Assert.Throws<NotSupportedException>(() => batching.Length);
        Assert.Throws<NotSupportedException>(() => batching.Seek(0, SeekOrigin.Begin));
    }

    /// <summary>Takes every Query and writes it on unchanged, so that the pump batches its output.</summary>
    private sealed class PassingHandler : IFrameHandler
    {
        public bool Wants(byte code) => code == (byte)'Q';

        public ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken) =>
            next.WriteAsync(frame, cancellationToken);
    }

    /// <summary>Records each write it receives as one array; or fails every write.</summary>
    private sealed class RecordingStream : Stream
    {
        private bool disposed;

        public List<byte[]> Writes { get; } = [];

        public Exception? Failure { get; init; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => !disposed;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (Failure is not null)
            {
                throw Failure;
            }

            Writes.Add(buffer.ToArray());
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled(cancellationToken);
            }

            try
            {
                Write(buffer.Span);
                return ValueTask.CompletedTask;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return ValueTask.FromException(e);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            disposed = true;
            base.Dispose(disposing);
        }
    }
}

using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Transport;

namespace PgProxy.Core.Client;

/// <summary>
/// <c>limits.client-idle-timeout</c>: ends a logged-in session whose client has kept the server waiting for that long,
/// as PostgreSQL's idle_session_timeout does (FATAL 57P05). The server waits for the client once it has sent
/// ReadyForQuery and the client has sent no whole message since; a client that stops in the middle of a message
/// waits too (its partial message is not a request), and so counts as idle from its last byte. It also waits after an
/// error inside an extended-protocol batch, until the client's Sync: PostgreSQL skips everything else meanwhile and
/// sends no ReadyForQuery, so a client that never sends the Sync would otherwise hold the server for ever. A query the
/// server is still running, a COPY in progress or a result being sent are not idle, however long they take.
/// </summary>
/// <remarks>
/// It watches what the session's pumps already do, from the client's side: the reader the frontend pump reads the
/// client with (what it consumed, and whether a partial message is left), and the stream the backend pump writes the
/// client with (whether the last write ended with a ReadyForQuery). The wait for a Sync after an error is the relay's
/// knowledge, asked for only when the timer checks. Nothing is decoded; a timer checks a few times per timeout.
/// </remarks>
internal sealed class ClientIdleWatch : IDisposable
{
    private readonly TimeSpan timeout;
    private readonly Func<ValueTask> expire;
    private readonly Func<long>? waitingForSyncSince;
    private readonly Timer timer;
    private long lastClientActivity;
    private long lastReady;
    private int waitingForClient; // 1: the last write to the client ended with ReadyForQuery, and no request came since
    private int expired;

    /// <param name="timeout">The silence allowed.</param>
    /// <param name="expire">Tells the client and closes the connection; called once, from a timer thread.</param>
    /// <param name="waitingForSyncSince">
    /// Since when (<see cref="Environment.TickCount64"/>) the server has been skipping to the client's Sync after an
    /// error, 0 when it is not; null where there is no server (the admin console).
    /// </param>
    public ClientIdleWatch(TimeSpan timeout, Func<ValueTask> expire, Func<long>? waitingForSyncSince = null)
    {
        this.timeout = timeout;
        this.expire = expire;
        this.waitingForSyncSince = waitingForSyncSince;
        lastClientActivity = Environment.TickCount64;
        TimeSpan period = TimeSpan.FromTicks(Math.Clamp(timeout.Ticks / 10, TimeSpan.TicksPerMillisecond * 100, TimeSpan.TicksPerSecond * 30));
        timer = new Timer(static state => ((ClientIdleWatch)state!).Check(), this, period, period);
    }

    /// <summary>Whether it ended the session.</summary>
    public bool Expired => Volatile.Read(ref expired) != 0;

    /// <summary>The reader of the client's messages, watched.</summary>
    public PipeReader Watch(PipeReader reader) => new WatchedReader(reader, this);

    /// <summary>The stream to the client, its writes watched.</summary>
    public Stream Watch(Stream stream) => new WatchedStream(stream, this);

    public void Dispose() => timer.Dispose();

    private void Check()
    {
        if (Volatile.Read(ref expired) != 0)
        {
            return;
        }

        // Waiting after a ReadyForQuery, or after an error until the Sync. The client's messages in between (skipped by
        // the server) are not requests, but they are activity: the timeout counts from the last byte.
        long errorSince = waitingForSyncSince?.Invoke() ?? 0;
        bool ready = Volatile.Read(ref waitingForClient) != 0;
        if (!ready && errorSince == 0)
        {
            return;
        }

        long since = Math.Max(Volatile.Read(ref lastClientActivity), Math.Max(ready ? Volatile.Read(ref lastReady) : 0, errorSince));
        if (Environment.TickCount64 - since < (long)timeout.TotalMilliseconds || Interlocked.Exchange(ref expired, 1) != 0)
        {
            return;
        }

        timer.Dispose();
        _ = expire().AsTask();
    }

    private void OnClientBytes() => Volatile.Write(ref lastClientActivity, Environment.TickCount64);

    /// <summary>
    /// The frontend pump consumed some of what it read: a request went on (a partial one only when it is large and
    /// streams through), so the server has work until its next ReadyForQuery. A pump that consumed nothing waits for
    /// the rest of a message: the client still keeps the server waiting.
    /// </summary>
    private void OnConsumed(bool consumedSomething)
    {
        if (consumedSomething)
        {
            Volatile.Write(ref waitingForClient, 0);
        }
    }

    private void OnWrittenToClient(ReadOnlySpan<byte> written)
    {
        // ReadyForQuery is 'Z', length 5, and a status byte: I, T or E. Nothing else ends a batch the server sends
        // when it is done with the client's requests.
        if (written.Length >= 6 && written[^6] == (byte)'Z' && written[^5] == 0 && written[^4] == 0 && written[^3] == 0 && written[^2] == 5
            && written[^1] is (byte)'I' or (byte)'T' or (byte)'E')
        {
            Volatile.Write(ref lastReady, Environment.TickCount64);
            Volatile.Write(ref waitingForClient, 1);
        }
    }

    private sealed class WatchedReader(PipeReader inner, ClientIdleWatch watch) : PipeReader
    {
        private ReadOnlySequence<byte> last;

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            watch.OnConsumed(!consumed.Equals(last.Start));
            inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            ReadResult result = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            Seen(result);
            return result;
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            Seen(result);
            return true;
        }

        private void Seen(ReadResult result)
        {
            if (result.Buffer.Length > (last.IsEmpty ? 0 : last.Length) || !result.Buffer.Start.Equals(last.Start))
            {
                watch.OnClientBytes();
            }

            last = result.Buffer;
        }
    }

    private sealed class WatchedStream(Stream inner, ClientIdleWatch watch) : Stream
    {
        public override bool CanRead => inner.CanRead;

        public override bool CanSeek => false;

        public override bool CanWrite => inner.CanWrite;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override int Read(Span<byte> buffer) => inner.Read(buffer);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            watch.OnWrittenToClient(buffer);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            watch.OnWrittenToClient(buffer.Span);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}

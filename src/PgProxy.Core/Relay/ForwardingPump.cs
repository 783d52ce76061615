using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using PgProxy.Core.Server;
using PgProxy.Core.Statistics;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Transaction pooling's side of the pumps (see <see cref="ForwardingPump.LinkGate"/>): the one place that knows
/// whether the client has a server connection now.
/// </summary>
internal interface ILinkGate
{
    /// <summary>
    /// Before the client-to-server pump forwards a batch whose first byte is <paramref name="firstCode"/>: makes sure
    /// the client has a server connection (waiting for one when it has none), or returns false when it cannot have one
    /// (the client was told why). The batch is forwarded before <see cref="AfterForward"/>.
    /// </summary>
    ValueTask<bool> BeforeForwardAsync(byte firstCode, CancellationToken cancellationToken);

    /// <summary>The batch announced by <see cref="BeforeForwardAsync"/> has been forwarded.</summary>
    void AfterForward();

    /// <summary>
    /// Called by the server-to-client pump when the connection is idle after a batch: true when the connection may go
    /// back now. A batch of the client's being forwarded at that moment is waited for (the server may answer before the
    /// client-to-server pump has finished with it), and the connection is still idle after it only if that batch
    /// asked nothing of the server.
    /// </summary>
    ValueTask<bool> TryUnlinkAsync();
}

/// <summary>Which way a pump forwards.</summary>
internal enum PumpDirection
{
    ClientToServer,
    ServerToClient,
}

/// <summary>
/// Forwards messages from one side's receive buffer to the other side's stream. Frames are scanned by their
/// 5-byte headers only; the bytes are written as the slices they arrived in, a whole batch at a time, with no
/// decode and no copy into new arrays. A large message streams through as its bytes arrive, so memory stays
/// bounded whatever its size; small ones are forwarded whole so frame boundaries are always known.
/// </summary>
internal sealed class ForwardingPump
{
    /// <summary>Frames at least this large stream through instead of being waited for whole.</summary>
    internal const int StreamingThreshold = 64 * 1024;

    private PipeReader source;
    private Stream destination;
    private Stream socket;
    private readonly ServerProtocolState state;
    private readonly PumpDirection direction;
    private readonly long maxMessageLength;
    private readonly FrameHandlerChain? handlers;
    private readonly BatchingStream? batching;
    private bool[]? wholeCodes;
    private StatementTracker? trackerSeen;
    private readonly StatementTimer? timer;
    private PumpStop? outputStop;
    private long remainingInFrame;
    private int handledBy;
    private long bytesForwarded;
    private bool writeInterrupted;

    public ForwardingPump(
        PipeReader source,
        Stream destination,
        ServerProtocolState state,
        PumpDirection direction,
        long maxMessageSize,
        IReadOnlyList<IFrameHandler>? handlers = null,
        StatementTimer? timer = null)
    {
        this.timer = timer;
        this.source = source;

        // With handlers, a batch's slices and the handlers' messages are gathered and sent in one write.
        socket = destination;
        batching = handlers is null or { Count: 0 } ? null : new BatchingStream(destination);
        destination = batching ?? destination;
        this.destination = destination;
        this.state = state;
        this.direction = direction;
        Output = new PumpOutput(this);
        this.handlers = batching is null ? null : new FrameHandlerChain(handlers!, Output);
        trackerSeen = state.Statements;
        wholeCodes = WholeCodes(trackerSeen is not null, timer is not null, direction == PumpDirection.ClientToServer);

        // The limit is on the whole message; the length field excludes the type byte.
        maxMessageLength = Math.Min(int.MaxValue, maxMessageSize - 1);
    }

    /// <summary>
    /// Where frames of the proxy's own go out in order with the relayed ones (a metadata query, a handler's output):
    /// written frames are observed as the ones forwarded are.
    /// </summary>
    public PumpOutput Output { get; }

    /// <summary>
    /// Whether a client's Terminate goes on to the server (true unless set): a pooled server connection outlives its
    /// client, so the Terminate ends the relay there and the connection goes back to its pool.
    /// </summary>
    public bool ForwardsTerminate { get; init; } = true;

    /// <summary>
    /// Transaction pooling's link between the client and whichever server connection it has now: the client-to-server
    /// pump asks it for a connection before it forwards what the client sent, and the server-to-client pump offers to
    /// give the connection back after a batch that leaves it idle (ReadyForQuery 'I' for the last request, no extended
    /// batch open, a frame boundary), stopping with <see cref="PumpStop.Unlinked"/> when it may. Null in the other modes.
    /// </summary>
    public ILinkGate? LinkGate { get; init; }

    /// <summary>
    /// Points the pump at another server connection (transaction pooling links a client to one per transaction): the
    /// client-to-server pump gets a new destination, the server-to-client pump a new source. Call only while the pump
    /// is not running.
    /// </summary>
    public void Retarget(UpstreamLeg upstream)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        if (direction == PumpDirection.ClientToServer)
        {
            socket = upstream.Stream;
            if (batching is not null)
            {
                batching.Inner = upstream.Stream;
            }
            else
            {
                destination = upstream.Stream;
            }
        }
        else
        {
            source = upstream.Reader;
        }
    }

    /// <summary>Bytes written to the destination so far.</summary>
    public long BytesForwarded => Volatile.Read(ref bytesForwarded);

    /// <summary>True when the destination has received only whole messages, so the proxy may write one of its own.</summary>
    public bool AtFrameBoundary => remainingInFrame == 0 && !writeInterrupted;

    /// <summary>The announced length that made the pump stop with <see cref="PumpStop.InvalidMessage"/> or <see cref="PumpStop.MessageTooLarge"/>.</summary>
    public long OffendingLength { get; private set; }

    public async Task<PumpStop> RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                ReadResult result = await source.ReadAsync(cancellationToken).ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    // Nothing taken: whoever reads next (this pump again, once relinked) sees the same bytes.
                    source.AdvanceTo(result.Buffer.Start);
                    return PumpStop.Cancelled;
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                if (LinkGate is { } gate && direction == PumpDirection.ClientToServer && !buffer.IsEmpty
                    && !await gate.BeforeForwardAsync(buffer.FirstSpan[0], cancellationToken).ConfigureAwait(false))
                {
                    source.AdvanceTo(buffer.Start);
                    return PumpStop.NoServer;
                }

                long consumed = 0;
                PumpStop? stop;
                while (true)
                {
                    ReadOnlySequence<byte> rest = buffer.Slice(consumed);
                    stop = Scan(rest, out long forwardable, out long handled);
                    if (forwardable > 0)
                    {
                        if (!await WriteAsync(rest.Slice(0, forwardable), cancellationToken).ConfigureAwait(false))
                        {
                            return PumpStop.DestinationFailed;
                        }

                        bytesForwarded += forwardable;
                        consumed += forwardable;
                    }

                    if (handled == 0 || stop is not null)
                    {
                        break;
                    }

                    // A frame some handler wants: whole, at the start of what is left. Toward the server, the state
                    // follows what the server receives, so the pump's output observes what the handlers write (a
                    // metadata query put before the client's Query is counted first, in the order of the wire). From the
                    // server, it follows what the server sent: the frame is observed once the handlers are done with it.
                    ReadOnlySequence<byte> frame = buffer.Slice(consumed, handled);
                    MessageHeader.TryPeek(frame, out MessageHeader handledHeader);
                    await handlers!.HandleAsync(handledHeader.Code, handledBy, frame, cancellationToken).ConfigureAwait(false);
                    if (direction == PumpDirection.ServerToClient)
                    {
                        stop = Observe(handledHeader, frame, 0, whole: true);
                    }
                    else
                    {
                        stop = outputStop;
                    }

                    consumed += handled;
                    bytesForwarded += handled;
                    if (stop is not null)
                    {
                        break;
                    }
                }

                if (batching is not null && !await FlushBatchAsync(cancellationToken).ConfigureAwait(false))
                {
                    return PumpStop.DestinationFailed;
                }

                source.AdvanceTo(buffer.GetPosition(consumed), buffer.End);
                if (direction == PumpDirection.ClientToServer)
                {
                    LinkGate?.AfterForward();
                }

                if (stop is { } reason)
                {
                    return reason;
                }

                if (direction == PumpDirection.ServerToClient && consumed > 0)
                {
                    if (state.ShouldEndAfterBatch())
                    {
                        return PumpStop.IdleShutdown;
                    }

                    if (LinkGate is { } linked && state.IsIdle && !state.ExtendedBatchOpen && AtFrameBoundary
                        && await linked.TryUnlinkAsync().ConfigureAwait(false))
                    {
                        return PumpStop.Unlinked;
                    }
                }

                if (result.IsCompleted)
                {
                    return PumpStop.SourceClosed;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return PumpStop.Cancelled;
        }
        catch (IOException)
        {
            return PumpStop.SourceFailed;
        }
        catch (SocketException)
        {
            return PumpStop.SourceFailed;
        }
        catch (ObjectDisposedException)
        {
            return PumpStop.SourceFailed;
        }
    }

    /// <summary>
    /// The message types the statement tracker and the statement timer read the bodies of: those never stream through
    /// in pieces (they are bounded by max-message-size toward the server, and small from it). Null when neither runs.
    /// </summary>
    private static bool[]? WholeCodes(bool tracking, bool timing, bool frontend)
    {
        if (!tracking && !timing)
        {
            return null;
        }

        var codes = new bool[256];
        for (int code = 0; code < 256; code++)
        {
            codes[code] = (tracking && StatementTracker.NeedsBody(frontend, (byte)code)) || (timing && StatementTimer.NeedsBody(frontend, (byte)code));
        }

        return codes;
    }

    /// <summary>
    /// Finds how much of <paramref name="buffer"/> can be forwarded now: every whole frame, plus whatever has
    /// arrived of a large one, up to the first frame the handler wants (whose size is returned in
    /// <paramref name="handled"/> once it is whole). Returns a reason to stop after forwarding, or null to go on.
    /// </summary>
    private PumpStop? Scan(in ReadOnlySequence<byte> buffer, out long forwardable, out long handled)
    {
        handled = 0;
        if (!ReferenceEquals(state.Statements, trackerSeen))
        {
            // Tracking began (masks added by a reload): the tracker's messages are taken whole from here on.
            trackerSeen = state.Statements;
            wholeCodes = WholeCodes(trackerSeen is not null, timer is not null, direction == PumpDirection.ClientToServer);
        }

        long position = 0;
        long available = buffer.Length;
        PumpStop? stop = null;
        while (true)
        {
            if (remainingInFrame > 0)
            {
                long take = Math.Min(remainingInFrame, available - position);
                position += take;
                remainingInFrame -= take;
                if (remainingInFrame > 0)
                {
                    break;
                }
            }

            if (stop is not null || !MessageHeader.TryPeek(buffer.Slice(position), out MessageHeader header))
            {
                break;
            }

            if (header.Length < MessageHeader.MinLength)
            {
                OffendingLength = header.Length;
                stop = PumpStop.InvalidMessage;
                break;
            }

            if (direction == PumpDirection.ClientToServer && header.Length > maxMessageLength)
            {
                OffendingLength = header.TotalSize;
                stop = PumpStop.MessageTooLarge;
                break;
            }

            long total = header.TotalSize;
            if (handlers is not null && (handledBy = handlers.FirstWanting(header.Code)) >= 0)
            {
                // Handled frames are taken whole, after the bytes before them are forwarded.
                if (available - position >= total)
                {
                    handled = total;
                }

                break;
            }

            if (available - position < total)
            {
                if (total < StreamingThreshold || wholeCodes?[header.Code] == true)
                {
                    break; // wait for the whole small frame, or one the statement tracker reads
                }

                stop = Observe(header, buffer, position, whole: false);
                remainingInFrame = total;
                continue;
            }

            stop = Observe(header, buffer, position, whole: true);
            if (stop == PumpStop.Terminated && !ForwardsTerminate)
            {
                break;
            }

            position += total;
        }

        forwardable = position;
        return stop;
    }

    /// <summary>
    /// The one place the server's protocol state follows the conversation: every frame the server receives or sends
    /// passes here exactly once, forwarded or handled. Only the header is read, except the bodies of ReadyForQuery,
    /// BackendKeyData and ParameterStatus (rare, small, and whole when <paramref name="whole"/>), and those the
    /// statement tracker reads when there is one.
    /// </summary>
    private PumpStop? Observe(MessageHeader header, in ReadOnlySequence<byte> buffer, long position, bool whole)
    {
        // The tracker read here, not the one the pump began with: a handler may start tracking before the frame it writes.
        StatementTracker? tracker = state.Statements;
        if (tracker is not null || timer is not null)
        {
            ReadOnlySequence<byte> body = whole ? buffer.Slice(position + MessageHeader.Size, header.Length - MessageHeader.LengthFieldSize) : default;
            if (direction == PumpDirection.ClientToServer)
            {
                tracker?.OnFrontendMessage(header.Code, body);
                timer?.OnFrontendMessage(header.Code, body);
            }
            else
            {
                tracker?.OnBackendMessage(header.Code, body, state.ClientEncoding ?? PostgresEncodings.Utf8);
                timer?.OnBackendMessage(header.Code, body);
            }
        }

        state.Responses?.OnFrame(direction == PumpDirection.ClientToServer, header.Code);
        if (direction == PumpDirection.ClientToServer)
        {
            switch ((FrontendMessageCode)header.Code)
            {
                case FrontendMessageCode.Query:
                case FrontendMessageCode.FunctionCall:
                    state.OnRequestForwarded();
                    break;
                case FrontendMessageCode.Sync:
                    state.OnRequestForwarded();
                    state.OnSyncForwarded();
                    state.ExtendedBatchOpen = false;
                    break;
                case FrontendMessageCode.Parse:
                case FrontendMessageCode.Bind:
                case FrontendMessageCode.Describe:
                case FrontendMessageCode.Execute:
                case FrontendMessageCode.Close:
                case FrontendMessageCode.Flush:
                    state.ExtendedBatchOpen = true;
                    break;
                case FrontendMessageCode.Terminate:
                    return PumpStop.Terminated;
            }

            return null;
        }

        switch ((BackendMessageCode)header.Code)
        {
            case BackendMessageCode.ReadyForQuery when header.Length == MessageHeader.LengthFor(1):
                state.OnReadyForQuery(SequenceBytes.First(buffer.Slice(position + MessageHeader.Size, 1)));
                break;
            case BackendMessageCode.BackendKeyData when whole:
                state.OnBackendKeyData(buffer.Slice(position + MessageHeader.Size, header.Length - MessageHeader.LengthFieldSize));
                break;
            case BackendMessageCode.ParameterStatus when whole:
                state.OnParameterStatus(buffer.Slice(position + MessageHeader.Size, header.Length - MessageHeader.LengthFieldSize));
                break;
            case BackendMessageCode.ErrorResponse:
                state.OnErrorResponse();
                break;
        }

        return null;
    }

    private async ValueTask<bool> FlushBatchAsync(CancellationToken cancellationToken)
    {
        try
        {
            await batching!.FlushAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            writeInterrupted = true;
            throw;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            writeInterrupted = true;
            return false;
        }
    }

    private async ValueTask<bool> WriteAsync(ReadOnlySequence<byte> batch, CancellationToken cancellationToken)
    {
        // Frames no handler took, with nothing of a handler's waiting before them, go straight to the socket: a session
        // whose handlers take nothing now (rules with no rules in force) forwards without a copy.
        Stream destination = batching is { IsEmpty: true } ? socket : this.destination;
        try
        {
            if (batch.IsSingleSegment)
            {
                await destination.WriteAsync(batch.First, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                foreach (ReadOnlyMemory<byte> segment in batch)
                {
                    await destination.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
                }
            }

            return true;
        }
        catch (OperationCanceledException)
        {
            // Part of the batch may have been written: the destination can no longer take a message of ours.
            writeInterrupted = true;
            throw;
        }
        catch (IOException)
        {
            writeInterrupted = true;
            return false;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>The end of a pump's handler pipeline: frames written here are observed (toward the server) and batched.</summary>
    internal sealed class PumpOutput(ForwardingPump pump) : IFrameSink
    {
        public ValueTask WriteAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken)
        {
            // A handler's row from the server, in one piece: straight to the batch, without a state machine per row.
            return pump.direction == PumpDirection.ServerToClient && frames.IsSingleSegment
                ? pump.destination.WriteAsync(frames.First, cancellationToken)
                : WriteObservedAsync(frames, cancellationToken);
        }

        private async ValueTask WriteObservedAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken)
        {
            if (pump.direction == PumpDirection.ClientToServer)
            {
                long position = 0;
                while (position < frames.Length && MessageHeader.TryPeek(frames.Slice(position), out MessageHeader header))
                {
                    PumpStop? stop = pump.Observe(header, frames, position, whole: true);
                    pump.outputStop ??= stop;
                    position += header.TotalSize;
                }
            }

            foreach (ReadOnlyMemory<byte> segment in frames)
            {
                await pump.destination.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
            }
        }

        /// <summary>Sends what the batch holds now (before the proxy waits for the server to answer a message of its own).</summary>
        public Task FlushAsync(CancellationToken cancellationToken) => pump.destination.FlushAsync(cancellationToken);
    }
}

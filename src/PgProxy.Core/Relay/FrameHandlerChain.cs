using System.Buffers;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// The ordered frame handlers of one pump, frozen when the session's relay starts. A frame goes to the first handler
/// that wants it; what that handler writes goes on, frame by frame, to the next handler that wants each one, and
/// finally to the pump's output. So a rule's rewrite is what an interceptor after it sees, and a handler never needs
/// to know which others exist. The links between handlers are allocated once, here, not per frame.
/// </summary>
internal sealed class FrameHandlerChain
{
    private readonly IFrameHandler[] handlers;
    private readonly IFrameSink[] links;

    public FrameHandlerChain(IReadOnlyList<IFrameHandler> handlers, IFrameSink output)
    {
        this.handlers = [.. handlers];
        links = new IFrameSink[this.handlers.Length + 1];
        links[this.handlers.Length] = output;
        for (int i = this.handlers.Length - 1; i >= 0; i--)
        {
            links[i] = new Link(this, i);
        }
    }

    /// <summary>The handlers in order.</summary>
    public IReadOnlyList<IFrameHandler> Handlers => handlers;

    /// <summary>Whether some handler takes a frame of this type now: the pump then gives it whole to <see cref="HandleAsync(ReadOnlySequence{byte}, CancellationToken)"/>.</summary>
    public bool Wants(byte code) => FirstWanting(code, 0) >= 0;

    /// <summary>
    /// The first handler that takes a frame of this type now, or -1: the pump then gives the frame whole to
    /// <see cref="HandleAsync(byte, int, ReadOnlySequence{byte}, CancellationToken)"/> with it, so that the handlers are
    /// asked once per frame, not again.
    /// </summary>
    public int FirstWanting(byte code) => FirstWanting(code, 0);

    /// <summary>Runs one whole frame through the handlers that want it.</summary>
    public ValueTask HandleAsync(ReadOnlySequence<byte> frame, CancellationToken cancellationToken) => links[0].WriteAsync(frame, cancellationToken);

    /// <summary>Runs one whole frame of type <paramref name="code"/> through the handlers, from <paramref name="handler"/> (<see cref="FirstWanting(byte)"/>'s answer) on.</summary>
    public ValueTask HandleAsync(byte code, int handler, ReadOnlySequence<byte> frame, CancellationToken cancellationToken) =>
        handlers[handler].HandleAsync(code, frame, links[handler + 1], cancellationToken);

    private int FirstWanting(byte code, int from)
    {
        for (int i = from; i < handlers.Length; i++)
        {
            if (handlers[i].Wants(code))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>What handler <c>index - 1</c> writes to: frames to the handlers from <c>index</c> on, else the output.</summary>
    private sealed class Link(FrameHandlerChain chain, int index) : IFrameSink
    {
        public ValueTask WriteAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken)
        {
            // One whole frame, as a handler writes a row it changed: passed on without a state machine of its own.
            if (MessageHeader.TryPeek(frames, out MessageHeader header) && header.Length >= MessageHeader.MinLength && header.TotalSize == frames.Length)
            {
                int next = chain.FirstWanting(header.Code, index);
                return next < 0
                    ? chain.links[^1].WriteAsync(frames, cancellationToken)
                    : chain.handlers[next].HandleAsync(header.Code, frames, chain.links[next + 1], cancellationToken);
            }

            return WriteEachAsync(frames, cancellationToken);
        }

        private async ValueTask WriteEachAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken)
        {
            IFrameSink output = chain.links[^1];
            while (!frames.IsEmpty)
            {
                if (!MessageHeader.TryPeek(frames, out MessageHeader header) || header.Length < MessageHeader.MinLength || header.TotalSize > frames.Length)
                {
                    throw new InvalidOperationException("a frame handler wrote a partial frame");
                }

                ReadOnlySequence<byte> frame = frames.Slice(0, header.TotalSize);
                frames = frames.Slice(header.TotalSize);
                int next = chain.FirstWanting(header.Code, index);
                if (next < 0)
                {
                    await output.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await chain.handlers[next].HandleAsync(header.Code, frame, chain.links[next + 1], cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }
}

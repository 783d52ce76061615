using System.Buffers;

namespace PgProxy.Core.Relay;

/// <summary>
/// One step of a pump's frame pipeline (see <see cref="FrameHandlerChain"/>): it takes the frames of the message types it
/// wants, whole, and passes on to <c>next</c> what should go on: the frame as it was, changed frames, several, or
/// nothing. Pumps of instances without interceptors have no handlers and never decode a frame.
/// </summary>
internal interface IFrameHandler
{
    /// <summary>Whether this handler takes a frame of this type now. Called once per frame, in order.</summary>
    bool Wants(byte code);

    /// <summary>Handles one whole frame (header included) and writes to <paramref name="next"/> what goes on.</summary>
    ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, IFrameSink next, CancellationToken cancellationToken);
}

/// <summary>Where a frame handler writes: the next handlers of the pipeline, then the destination.</summary>
internal interface IFrameSink
{
    /// <summary>Writes whole frames, one or more back to back. The bytes are only lent: they may be reused once this returns.</summary>
    ValueTask WriteAsync(ReadOnlySequence<byte> frames, CancellationToken cancellationToken);
}

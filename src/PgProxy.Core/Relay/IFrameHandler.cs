using System.Buffers;

namespace PgProxy.Core.Relay;

/// <summary>
/// Takes over the frames of some message types from a pump: it receives them whole and writes whatever should go on
/// (the frame as it was, a changed one, or nothing). Pumps of instances without interceptors have no handler and
/// never decode a frame.
/// </summary>
internal interface IFrameHandler
{
    /// <summary>Whether this handler takes a frame of this type. Called once per frame, in order.</summary>
    bool Wants(byte code);

    /// <summary>Handles one whole frame (header included); writes to <paramref name="destination"/> what goes on.</summary>
    ValueTask HandleAsync(byte code, ReadOnlySequence<byte> frame, Stream destination, CancellationToken cancellationToken);
}

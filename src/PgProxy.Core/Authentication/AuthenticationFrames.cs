using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Authentication;

/// <summary>
/// Whole-message reads for the logins the proxy takes part in (the authentication exchange, auth-query). These
/// messages are few and small, so they are copied out of the pipe; the pipe then goes on to the pumps at the next
/// message. Framing is <see cref="FrameReader"/>'s, as everywhere else.
/// </summary>
internal static class AuthenticationFrames
{
    /// <summary>Larger than any authentication message; a peer announcing more is not speaking the protocol.</summary>
    public const int MaxLength = 1 << 20;

    /// <summary>The next whole message, type byte and length included; null when the peer closed first.</summary>
    /// <exception cref="InvalidDataException">The length is invalid or above <paramref name="maxLength"/>.</exception>
    public static async ValueTask<byte[]?> ReadAsync(PipeReader reader, CancellationToken cancellationToken, int maxLength = MaxLength)
    {
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            ReadOnlySequence<byte> rest = buffer;
            switch (FrameReader.TryReadFrame(ref rest, maxLength, out _))
            {
                case FrameReadStatus.Complete:
                    byte[] frame = buffer.Slice(0, rest.Start).ToArray();
                    reader.AdvanceTo(rest.Start);
                    return frame;
                case FrameReadStatus.InvalidLength:
                case FrameReadStatus.TooLarge:
                    MessageHeader.TryPeek(buffer, out MessageHeader header);
                    reader.AdvanceTo(buffer.Start);
                    throw new InvalidDataException($"invalid message length {header.Length}");
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return null;
            }
        }
    }
}

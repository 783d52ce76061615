using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Authentication;

/// <summary>
/// Whole-message reads for the authentication exchange the proxy takes part in. These messages are few and small,
/// so they are copied out of the pipe; the pipe then goes on to the pumps at the next message.
/// </summary>
internal static class AuthenticationFrames
{
    /// <summary>Larger than any authentication message; a peer announcing more is not speaking the protocol.</summary>
    public const int MaxLength = 1 << 20;

    /// <summary>The next whole message, type byte and length included; null when the peer closed first.</summary>
    /// <exception cref="InvalidDataException">The length is invalid or above <see cref="MaxLength"/>.</exception>
    public static async ValueTask<byte[]?> ReadAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (MessageHeader.TryPeek(buffer, out MessageHeader header))
            {
                if (header.Length is < MessageHeader.MinLength or > MaxLength)
                {
                    reader.AdvanceTo(buffer.Start);
                    throw new InvalidDataException($"invalid message length {header.Length}");
                }

                if (buffer.Length >= header.TotalSize)
                {
                    byte[] frame = buffer.Slice(0, header.TotalSize).ToArray();
                    reader.AdvanceTo(buffer.GetPosition(header.TotalSize));
                    return frame;
                }
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return null;
            }
        }
    }
}

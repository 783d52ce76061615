using System.Buffers;

namespace PgProxy.Protocol.Framing;

/// <summary>Outcome of <see cref="FrameReader.TryReadFrame"/>.</summary>
public enum FrameReadStatus
{
    /// <summary>A whole frame was read and consumed from the buffer.</summary>
    Complete,

    /// <summary>More bytes are needed; the buffer is unchanged.</summary>
    Incomplete,

    /// <summary>The length field is below the protocol minimum: the peer is not speaking the protocol.</summary>
    InvalidLength,

    /// <summary>The length field exceeds the caller's limit; rejected from the header, before the body arrives.</summary>
    TooLarge,
}

/// <summary>A whole message: its type byte and its body as a slice of the receive buffer (not a copy).</summary>
public readonly record struct Frame(byte Code, ReadOnlySequence<byte> Body);

/// <summary>Framing as one pure function over the receive buffer.</summary>
public static class FrameReader
{
    /// <summary>
    /// Reads one whole message from the start of <paramref name="buffer"/>. On <see cref="FrameReadStatus.Complete"/>
    /// the buffer is advanced past it and <paramref name="frame"/>'s body is a slice of the input.
    /// </summary>
    public static FrameReadStatus TryReadFrame(ref ReadOnlySequence<byte> buffer, long maxLength, out Frame frame)
    {
        frame = default;
        if (!MessageHeader.TryPeek(buffer, out MessageHeader header))
        {
            return FrameReadStatus.Incomplete;
        }

        if (header.Length < MessageHeader.MinLength)
        {
            return FrameReadStatus.InvalidLength;
        }

        if (header.Length > maxLength)
        {
            return FrameReadStatus.TooLarge;
        }

        if (buffer.Length < header.TotalSize)
        {
            return FrameReadStatus.Incomplete;
        }

        frame = new Frame(header.Code, buffer.Slice(MessageHeader.Size, header.Length - MessageHeader.MinLength));
        buffer = buffer.Slice(header.TotalSize);
        return FrameReadStatus.Complete;
    }
}

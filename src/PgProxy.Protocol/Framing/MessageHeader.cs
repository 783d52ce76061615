using System.Buffers;
using System.Buffers.Binary;

namespace PgProxy.Protocol.Framing;

/// <summary>
/// The 5-byte header of every message after start-up: a type byte and a big-endian Int32 length that
/// counts itself but not the type byte.
/// </summary>
public readonly record struct MessageHeader(byte Code, int Length)
{
    /// <summary>Bytes of the header on the wire.</summary>
    public const int Size = 5;

    /// <summary>The smallest valid length field: the length counts its own four bytes.</summary>
    public const int MinLength = 4;

    /// <summary>Bytes of the whole message on the wire, header included.</summary>
    public long TotalSize => 1L + Length;

    /// <summary>Reads a header at the start of <paramref name="buffer"/> without consuming it.</summary>
    /// <returns>False when fewer than five bytes are buffered.</returns>
    public static bool TryPeek(in ReadOnlySequence<byte> buffer, out MessageHeader header)
    {
        if (buffer.Length < Size)
        {
            header = default;
            return false;
        }

        ReadOnlySpan<byte> first = buffer.FirstSpan;
        if (first.Length >= Size)
        {
            header = new MessageHeader(first[0], BinaryPrimitives.ReadInt32BigEndian(first[1..]));
            return true;
        }

        Span<byte> bytes = stackalloc byte[Size];
        buffer.Slice(0, Size).CopyTo(bytes);
        header = new MessageHeader(bytes[0], BinaryPrimitives.ReadInt32BigEndian(bytes[1..]));
        return true;
    }
}

using System.Buffers;
using System.Buffers.Binary;

namespace PgProxy.Protocol.Framing;

/// <summary>
/// The 5-byte header of every message after start-up: a type byte and a big-endian Int32 length that
/// counts itself but not the type byte.
/// </summary>
public readonly record struct MessageHeader(byte Code, int Length)
{
    /// <summary>Bytes of the type byte that opens the header.</summary>
    public const int CodeSize = 1;

    /// <summary>Bytes of the Int32 length field.</summary>
    public const int LengthFieldSize = WireFormat.Int32Size;

    /// <summary>Bytes of the header on the wire: type byte and length field.</summary>
    public const int Size = CodeSize + LengthFieldSize;

    /// <summary>The smallest valid length field: the length counts its own four bytes.</summary>
    public const int MinLength = LengthFieldSize;

    /// <summary>Bytes of the whole message on the wire, header included.</summary>
    public long TotalSize => CodeSize + (long)Length;

    /// <summary>The length field announcing a body of <paramref name="bodyLength"/> bytes.</summary>
    public static int LengthFor(int bodyLength) => checked(LengthFieldSize + bodyLength);

    /// <summary>Reads a header at the start of <paramref name="buffer"/> without consuming it.</summary>
    /// <returns>False when fewer than <see cref="Size"/> bytes are buffered.</returns>
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
            header = new MessageHeader(first[0], BinaryPrimitives.ReadInt32BigEndian(first[CodeSize..]));
            return true;
        }

        Span<byte> bytes = stackalloc byte[Size];
        buffer.Slice(0, Size).CopyTo(bytes);
        header = new MessageHeader(bytes[0], BinaryPrimitives.ReadInt32BigEndian(bytes[CodeSize..]));
        return true;
    }
}

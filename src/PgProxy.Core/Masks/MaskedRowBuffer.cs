using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Core.Masks;

/// <summary>
/// Where a session's mask stage writes each rewritten DataRow: one array reused from row to row, so that a result of a
/// million rows allocates nothing per row. It grows to the largest row seen, and gives back what a row larger than
/// <see cref="RetainedCapacity"/> made it take once that row has been passed on, so that one huge value does not stay
/// held by the session.
/// </summary>
internal sealed class MaskedRowBuffer
{
    /// <summary>The capacity kept between rows: the usual row is far smaller, a larger one is rare enough to allocate for.</summary>
    internal const int RetainedCapacity = 64 * 1024;

    private const int InitialCapacity = 256;

    private byte[] buffer = new byte[InitialCapacity];

    /// <summary>Bytes written since <see cref="Reset"/>.</summary>
    public int Length { get; private set; }

    /// <summary>What was written, for the next stage (lent: valid until the next <see cref="Reset"/>).</summary>
    public ReadOnlyMemory<byte> Written => buffer.AsMemory(0, Length);

    /// <summary>Starts a new row.</summary>
    public void Reset()
    {
        Length = 0;
        if (buffer.Length > RetainedCapacity)
        {
            buffer = new byte[InitialCapacity];
        }
    }

    /// <summary>Space for at least <paramref name="size"/> more bytes after what is written; <see cref="Advance"/> by what was used.</summary>
    public Span<byte> GetSpan(int size)
    {
        if (buffer.Length - Length < size)
        {
            Grow(size);
        }

        return buffer.AsSpan(Length);
    }

    public void Advance(int count) => Length += count;

    /// <summary>Cuts what was written back to <paramref name="length"/> bytes (a value that became NULL after all).</summary>
    public void Truncate(int length) => Length = length;

    public void Write(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        Length += bytes.Length;
    }

    public void WriteByte(byte value)
    {
        GetSpan(1)[0] = value;
        Length++;
    }

    public void WriteInt32BigEndian(int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(GetSpan(sizeof(int)), value);
        Length += sizeof(int);
    }

    /// <summary>Overwrites four bytes already written (a length field, once the length is known).</summary>
    public void SetInt32BigEndian(int offset, int value) => BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(offset, sizeof(int)), value);

    /// <summary>Writes <paramref name="count"/> copies of <paramref name="value"/>.</summary>
    public void WriteRepeated(byte value, int count)
    {
        GetSpan(count)[..count].Fill(value);
        Length += count;
    }

    /// <summary>Writes text in <paramref name="encoding"/>, straight into the row.</summary>
    /// <exception cref="EncoderFallbackException">The text has a character the encoding cannot write.</exception>
    public void WriteText(ReadOnlySpan<char> text, Encoding encoding)
    {
        // The bound costs nothing to compute; the exact count costs a pass over the text, worth it only for a large one.
        int size = text.Length <= 4096 ? encoding.GetMaxByteCount(text.Length) : encoding.GetByteCount(text);
        Length += encoding.GetBytes(text, GetSpan(size));
    }

    private void Grow(int size)
    {
        int needed = checked(Length + size);
        Array.Resize(ref buffer, Math.Max(needed, (int)Math.Min(Array.MaxLength, (long)buffer.Length * 2)));
    }
}

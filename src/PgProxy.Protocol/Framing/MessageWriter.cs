using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Protocol.Framing;

/// <summary>
/// Writes one message whose body length the caller computed first: <see cref="Start(IBufferWriter{byte}, byte, int)"/>
/// writes the header, the Write methods fill the body, <see cref="Complete"/> commits it. Writing past the announced
/// length, or completing short of it, throws: a length field that lies would desynchronize the peer for the rest of
/// the session, so a miscounting writer must fail where it miscounts.
/// </summary>
public ref struct MessageWriter
{
    private readonly IBufferWriter<byte> output;
    private readonly Span<byte> message;
    private readonly byte code;
    private int position;

    private MessageWriter(IBufferWriter<byte> output, Span<byte> message, byte code)
    {
        this.output = output;
        this.message = message;
        this.code = code;
        position = MessageHeader.Size;
    }

    /// <summary>Bytes of the body still to be written.</summary>
    public readonly int Remaining => message.Length - position;

    /// <summary>Starts a message with type byte <paramref name="code"/> and a body of exactly <paramref name="bodyLength"/> bytes.</summary>
    public static MessageWriter Start(IBufferWriter<byte> output, byte code, int bodyLength)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfNegative(bodyLength);
        int length = MessageHeader.LengthFor(bodyLength);
        Span<byte> message = output.GetSpan(checked(MessageHeader.CodeSize + length))[..(MessageHeader.CodeSize + length)];
        message[0] = code;
        BinaryPrimitives.WriteInt32BigEndian(message[MessageHeader.CodeSize..], length);
        return new MessageWriter(output, message, code);
    }

    /// <summary>Starts a server message.</summary>
    public static MessageWriter Start(IBufferWriter<byte> output, BackendMessageCode code, int bodyLength) => Start(output, (byte)code, bodyLength);

    /// <summary>Starts a client message.</summary>
    public static MessageWriter Start(IBufferWriter<byte> output, FrontendMessageCode code, int bodyLength) => Start(output, (byte)code, bodyLength);

    /// <summary>Writes a Byte1.</summary>
    public void WriteByte(byte value) => Take(1)[0] = value;

    /// <summary>Writes a big-endian Int16.</summary>
    public void WriteInt16(short value) => BinaryPrimitives.WriteInt16BigEndian(Take(WireFormat.Int16Size), value);

    /// <summary>Writes a big-endian Int32.</summary>
    public void WriteInt32(int value) => BinaryPrimitives.WriteInt32BigEndian(Take(WireFormat.Int32Size), value);

    /// <summary>Writes an OID: an Int32 on the wire, unsigned in meaning.</summary>
    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Take(WireFormat.Int32Size), value);

    /// <summary>Writes bytes as they are.</summary>
    public void WriteBytes(ReadOnlySpan<byte> value) => value.CopyTo(Take(value.Length));

    /// <summary>Writes bytes as they are.</summary>
    public void WriteBytes(in ReadOnlySequence<byte> value) => value.CopyTo(Take(checked((int)value.Length)));

    /// <summary>Writes <paramref name="count"/> zero bytes: empty Strings and zero counts alike.</summary>
    public void WriteZeros(int count) => Take(count).Clear();

    /// <summary>Writes <paramref name="value"/> in <paramref name="encoding"/>, then its terminating NUL.</summary>
    public void WriteCString(string value, Encoding encoding)
    {
        WriteText(value, encoding);
        WriteByte(0);
    }

    /// <summary>Writes an Int32 byte count, then <paramref name="value"/> in <paramref name="encoding"/>: a text value of DataRow or Bind.</summary>
    public void WriteLengthPrefixedText(string value, Encoding encoding)
    {
        Span<byte> length = Take(WireFormat.Int32Size);

        // The count is known once the text is written: encoding it once serves both.
        BinaryPrimitives.WriteInt32BigEndian(length, WriteText(value, encoding));
    }

    /// <summary>Writes <paramref name="value"/> in <paramref name="encoding"/>, no terminator; returns the bytes written.</summary>
    public int WriteText(string value, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(encoding);
        if (!encoding.TryGetBytes(value, message[position..], out int written))
        {
            throw Overrun();
        }

        position += written;
        return written;
    }

    /// <summary>Commits the message to the output.</summary>
    /// <exception cref="InvalidOperationException">Fewer bytes were written than announced.</exception>
    public void Complete()
    {
        if (position != message.Length)
        {
            throw new InvalidOperationException(
                $"'{(char)code}' message announced a {message.Length - MessageHeader.Size}-byte body but {position - MessageHeader.Size} bytes were written");
        }

        output.Advance(position);
    }

    private Span<byte> Take(int count)
    {
        if (count > message.Length - position)
        {
            throw Overrun();
        }

        Span<byte> taken = message.Slice(position, count);
        position += count;
        return taken;
    }

    private readonly InvalidOperationException Overrun() =>
        new($"'{(char)code}' message announced a {message.Length - MessageHeader.Size}-byte body but more is being written");
}

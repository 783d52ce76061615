using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>One column value of a <see cref="DataRow"/>: a slice of the message body, or SQL NULL.</summary>
public readonly struct DataRowValue
{
    internal DataRowValue(ReadOnlySequence<byte> bytes) => Bytes = bytes;

    private DataRowValue(bool isNull) => IsNull = isNull;

    /// <summary>SQL NULL: sent as length -1, with no bytes.</summary>
    public static DataRowValue Null { get; } = new(isNull: true);

    /// <summary>Whether the value is SQL NULL.</summary>
    public bool IsNull { get; }

    /// <summary>The value's bytes (empty for NULL), sliced from the body, not copied.</summary>
    public ReadOnlySequence<byte> Bytes { get; }

    /// <summary>The value decoded as text, or null for SQL NULL.</summary>
    /// <exception cref="DecoderFallbackException">The bytes are not valid in a strict <paramref name="encoding"/>.</exception>
    public string? ToText(Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        return IsNull ? null : SequenceBytes.Text(Bytes, encoding);
    }
}

/// <summary>A DataRow body checked whole by <see cref="DataRowMessage.TryRead"/>: its values are enumerated without further failure.</summary>
public readonly struct DataRow
{
    private readonly ReadOnlySequence<byte> values;

    internal DataRow(int columnCount, ReadOnlySequence<byte> values)
    {
        ColumnCount = columnCount;
        this.values = values;
    }

    /// <summary>How many values the row holds.</summary>
    public int ColumnCount { get; }

    /// <summary>Enumerates the values in column order.</summary>
    public Enumerator GetEnumerator() => new(this);

    /// <summary>Walks the values of a validated row.</summary>
    public ref struct Enumerator
    {
        private SequenceReader<byte> reader;
        private int left;

        internal Enumerator(DataRow row)
        {
            reader = new SequenceReader<byte>(row.values);
            left = row.ColumnCount;
        }

        /// <summary>The value the enumerator is on.</summary>
        public DataRowValue Current { get; private set; }

        /// <summary>Moves to the next value; false after the last.</summary>
        public bool MoveNext()
        {
            if (left == 0)
            {
                return false;
            }

            left--;
            reader.TryReadBigEndian(out int length);
            if (length == WireFormat.NullValueLength)
            {
                Current = DataRowValue.Null;
                return true;
            }

            BodyReading.TryReadSlice(ref reader, length, out ReadOnlySequence<byte> bytes);
            Current = new DataRowValue(bytes);
            return true;
        }
    }
}

/// <summary>Reads and writes DataRow ('D'): an Int16 value count, then per value an Int32 length (-1 for NULL) and that many bytes.</summary>
public static class DataRowMessage
{
    /// <summary>Checks a DataRow body whole; false when a length is invalid, a value is truncated or bytes are left over.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, out DataRow row)
    {
        row = default;
        var reader = new SequenceReader<byte>(body);
        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            return false;
        }

        ReadOnlySequence<byte> values = reader.UnreadSequence;
        for (int i = 0; i < count; i++)
        {
            if (!reader.TryReadBigEndian(out int length)
                || (length != WireFormat.NullValueLength && !BodyReading.TryReadSlice(ref reader, length, out _)))
            {
                return false;
            }
        }

        if (!reader.End)
        {
            return false;
        }

        row = new DataRow(count, values);
        return true;
    }

    /// <summary>
    /// Checks a DataRow body held in one span as <see cref="TryRead"/> checks a sequence, without building a reader: for
    /// code that then walks the values itself, once per row of a large result.
    /// </summary>
    public static bool TryCheck(ReadOnlySpan<byte> body, out int columnCount)
    {
        columnCount = 0;
        if (body.Length < WireFormat.Int16Size)
        {
            return false;
        }

        int count = BinaryPrimitives.ReadInt16BigEndian(body);
        if (count < 0)
        {
            return false;
        }

        int position = WireFormat.Int16Size;
        for (int i = 0; i < count; i++)
        {
            if (body.Length - position < WireFormat.Int32Size)
            {
                return false;
            }

            int length = BinaryPrimitives.ReadInt32BigEndian(body[position..]);
            position += WireFormat.Int32Size;
            if (length == WireFormat.NullValueLength)
            {
                continue;
            }

            if (length < 0 || length > body.Length - position)
            {
                return false;
            }

            position += length;
        }

        if (position != body.Length)
        {
            return false;
        }

        columnCount = count;
        return true;
    }

    /// <summary>Decodes a DataRow of text-format values (null for SQL NULL); false when malformed or not valid in <paramref name="encoding"/>.</summary>
    public static bool TryReadText(in ReadOnlySequence<byte> body, Encoding encoding, out string?[] values)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        values = [];
        if (!TryRead(body, out DataRow row))
        {
            return false;
        }

        var result = new string?[row.ColumnCount];
        int i = 0;
        try
        {
            foreach (DataRowValue value in row)
            {
                result[i++] = value.ToText(encoding);
            }
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        values = result;
        return true;
    }

    /// <summary>Writes a whole DataRow of values given as bytes (null for SQL NULL).</summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<ReadOnlyMemory<byte>?> values)
    {
        int bodyLength = WireFormat.Int16Size;
        foreach (ReadOnlyMemory<byte>? value in values)
        {
            bodyLength = checked(bodyLength + WireFormat.Int32Size + (value?.Length ?? 0));
        }

        var writer = MessageWriter.Start(output, BackendMessageCode.DataRow, bodyLength);
        writer.WriteInt16(checked((short)values.Length));
        foreach (ReadOnlyMemory<byte>? value in values)
        {
            writer.WriteInt32(value?.Length ?? WireFormat.NullValueLength);
            if (value is { } bytes)
            {
                writer.WriteBytes(bytes.Span);
            }
        }

        writer.Complete();
    }

    /// <summary>Writes a whole DataRow of text values in <paramref name="encoding"/> (null for SQL NULL).</summary>
    public static void WriteText(IBufferWriter<byte> output, Encoding encoding, IReadOnlyList<string?> values)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(values);
        int bodyLength = WireFormat.Int16Size;
        foreach (string? value in values)
        {
            bodyLength = checked(bodyLength + WireFormat.Int32Size + (value is null ? 0 : encoding.GetByteCount(value)));
        }

        var writer = MessageWriter.Start(output, BackendMessageCode.DataRow, bodyLength);
        writer.WriteInt16(checked((short)values.Count));
        foreach (string? value in values)
        {
            if (value is null)
            {
                writer.WriteInt32(WireFormat.NullValueLength);
                continue;
            }

            writer.WriteLengthPrefixedText(value, encoding);
        }

        writer.Complete();
    }
}

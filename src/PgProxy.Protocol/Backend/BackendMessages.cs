using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Protocol.Backend;

/// <summary>Decoders for the server messages the proxy reads itself: ParameterStatus, RowDescription, DataRow, ErrorResponse.</summary>
public static class BackendMessages
{
    /// <summary>Decodes ParameterStatus: a name and a value.</summary>
    public static bool TryReadParameterStatus(in ReadOnlySequence<byte> body, out string name, out string value)
    {
        var reader = new SequenceReader<byte>(body);
        value = string.Empty;
        return QueryMessages.TryReadCString(ref reader, Encoding.UTF8, out name)
            && QueryMessages.TryReadCString(ref reader, Encoding.UTF8, out value);
    }

    /// <summary>Decodes the column names of a RowDescription.</summary>
    public static bool TryReadColumnNames(in ReadOnlySequence<byte> body, Encoding encoding, out string[] names)
    {
        var reader = new SequenceReader<byte>(body);
        names = [];
        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            return false;
        }

        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            // name, then table OID, column number, type OID, type size, type modifier, format: 18 bytes.
            if (!QueryMessages.TryReadCString(ref reader, encoding, out result[i]) || reader.Remaining < 18)
            {
                return false;
            }

            reader.Advance(18);
        }

        names = result;
        return true;
    }

    /// <summary>Decodes a DataRow of text-format values (null for SQL NULL).</summary>
    public static bool TryReadTextRow(in ReadOnlySequence<byte> body, Encoding encoding, out string?[] values)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        var reader = new SequenceReader<byte>(body);
        values = [];
        if (!reader.TryReadBigEndian(out short count) || count < 0)
        {
            return false;
        }

        var result = new string?[count];
        for (int i = 0; i < count; i++)
        {
            if (!reader.TryReadBigEndian(out int length) || length < -1 || reader.Remaining < Math.Max(length, 0))
            {
                return false;
            }

            if (length >= 0)
            {
                ReadOnlySequence<byte> bytes = reader.UnreadSequence.Slice(0, length);
                result[i] = encoding.GetString(bytes.ToArray());
                reader.Advance(length);
            }
        }

        values = result;
        return true;
    }

    /// <summary>Decodes the fields of an ErrorResponse or NoticeResponse, in order.</summary>
    public static List<KeyValuePair<char, string>> ReadFields(in ReadOnlySequence<byte> body, Encoding encoding)
    {
        var fields = new List<KeyValuePair<char, string>>();
        var reader = new SequenceReader<byte>(body);
        while (reader.TryRead(out byte type) && type != 0)
        {
            if (!QueryMessages.TryReadCString(ref reader, encoding, out string value))
            {
                break;
            }

            fields.Add(new((char)type, value));
        }

        return fields;
    }

    /// <summary>Writes an ErrorResponse or NoticeResponse with the given fields.</summary>
    public static void WriteFields(IBufferWriter<byte> writer, BackendMessageCode code, Encoding encoding, IEnumerable<KeyValuePair<char, string>> fields)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(fields);
        List<KeyValuePair<char, string>> list = [.. fields];
        int length = 4 + 1 + list.Sum(f => 1 + encoding.GetByteCount(f.Value) + 1);
        Span<byte> span = writer.GetSpan(1 + length);
        span[0] = (byte)code;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        int offset = 5;
        foreach (KeyValuePair<char, string> field in list)
        {
            span[offset++] = (byte)field.Key;
            offset += encoding.GetBytes(field.Value, span[offset..]);
            span[offset++] = 0;
        }

        span[offset++] = 0;
        if (offset != 1 + length)
        {
            throw new System.Diagnostics.UnreachableException($"message announced {length} bytes but wrote {offset - 1}");
        }

        writer.Advance(offset);
    }
}

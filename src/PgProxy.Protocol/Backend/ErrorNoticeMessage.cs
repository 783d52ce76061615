using System.Buffers;
using System.Text;
using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// The fields of an ErrorResponse or NoticeResponse, in the order received. Fields PgProxy does not name are kept, so a
/// message read and written again loses nothing.
/// </summary>
public sealed class ErrorFields(IReadOnlyList<KeyValuePair<char, string>> all)
{
    /// <summary>Every field, in order.</summary>
    public IReadOnlyList<KeyValuePair<char, string>> All { get; } = all ?? throw new ArgumentNullException(nameof(all));

    /// <summary>The severity, possibly localized ('S').</summary>
    public string? Severity => Get(ErrorFieldCodes.Severity);

    /// <summary>The severity, never localized ('V'); absent before PostgreSQL 9.6.</summary>
    public string? SeverityNonLocalized => Get(ErrorFieldCodes.SeverityNonLocalized);

    /// <summary>The SQLSTATE code ('C').</summary>
    public string? SqlState => Get(ErrorFieldCodes.SqlState);

    /// <summary>The primary message ('M').</summary>
    public string? Message => Get(ErrorFieldCodes.Message);

    /// <summary>The secondary message ('D').</summary>
    public string? Detail => Get(ErrorFieldCodes.Detail);

    /// <summary>The suggestion ('H').</summary>
    public string? Hint => Get(ErrorFieldCodes.Hint);

    /// <summary>The position in the query text ('P'), as sent: a decimal number.</summary>
    public string? Position => Get(ErrorFieldCodes.Position);

    /// <summary>The call stack context ('W').</summary>
    public string? Where => Get(ErrorFieldCodes.Where);

    /// <summary>The value of the first field named <paramref name="code"/>, or null.</summary>
    public string? Get(char code)
    {
        foreach (KeyValuePair<char, string> field in All)
        {
            if (field.Key == code)
            {
                return field.Value;
            }
        }

        return null;
    }
}

/// <summary>
/// Reads and writes ErrorResponse ('E') and NoticeResponse ('N'), which share one body: fields of a type byte and a
/// String, ended by a zero byte.
/// </summary>
public static class ErrorNoticeMessage
{
    /// <summary>Decodes an ErrorResponse or NoticeResponse body; false when a field is unterminated, the list is not ended by a zero byte, or bytes follow it.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> body, Encoding encoding, out ErrorFields fields)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        var list = new List<KeyValuePair<char, string>>();
        var reader = new SequenceReader<byte>(body);
        bool ended = ReadFieldsInto(ref reader, encoding, list);
        fields = new ErrorFields(ended && reader.End ? list : []);
        return ended && reader.End;
    }

    /// <summary>Writes a whole ErrorResponse or NoticeResponse with <paramref name="fields"/>, in order.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="code"/> is neither ErrorResponse nor NoticeResponse.</exception>
    public static void Write(IBufferWriter<byte> output, BackendMessageCode code, Encoding encoding, IEnumerable<KeyValuePair<char, string>> fields)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(fields);
        if (code is not (BackendMessageCode.ErrorResponse or BackendMessageCode.NoticeResponse))
        {
            throw new ArgumentOutOfRangeException(nameof(code), code, "fields are sent in ErrorResponse or NoticeResponse");
        }

        IReadOnlyCollection<KeyValuePair<char, string>> list = fields as IReadOnlyCollection<KeyValuePair<char, string>> ?? [.. fields];
        int bodyLength = WireFormat.TerminatorSize;
        foreach (KeyValuePair<char, string> field in list)
        {
            bodyLength = checked(bodyLength + FieldTypeSize + WireFormat.CStringSize(field.Value, encoding));
        }

        var writer = MessageWriter.Start(output, code, bodyLength);
        foreach (KeyValuePair<char, string> field in list)
        {
            // Truncated to a byte as the engine always wrote it: checking the codes plugins set belongs to the plugin API.
            writer.WriteByte((byte)field.Key);
            writer.WriteCString(field.Value, encoding);
        }

        writer.WriteByte(0);
        writer.Complete();
    }

    /// <summary>Reads fields up to the terminating zero byte into <paramref name="fields"/>; false when it stops short of it.</summary>
    internal static bool ReadFieldsInto(ref SequenceReader<byte> reader, Encoding encoding, List<KeyValuePair<char, string>> fields)
    {
        while (reader.TryRead(out byte type))
        {
            if (type == 0)
            {
                return true;
            }

            if (!BodyReading.TryReadCString(ref reader, encoding, out string value))
            {
                return false;
            }

            fields.Add(new((char)type, value));
        }

        return false;
    }

    private const int FieldTypeSize = 1;
}

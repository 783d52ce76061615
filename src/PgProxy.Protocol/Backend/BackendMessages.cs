using System.Buffers;
using System.Text;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// The engine's first decoders of server messages, kept by name. Each now reads through the message's own reader
/// (<see cref="ParameterStatusMessage"/>, <see cref="RowDescriptionMessage"/>, <see cref="DataRowMessage"/>,
/// <see cref="ErrorNoticeMessage"/>): undecodable text and trailing bytes make them return false instead of throwing.
/// </summary>
public static class BackendMessages
{
    /// <summary>Decodes ParameterStatus: a name and a value.</summary>
    public static bool TryReadParameterStatus(in ReadOnlySequence<byte> body, out string name, out string value) =>
        ParameterStatusMessage.TryRead(body, out name, out value);

    /// <summary>Decodes the column names of a RowDescription.</summary>
    public static bool TryReadColumnNames(in ReadOnlySequence<byte> body, Encoding encoding, out string[] names)
    {
        names = [];
        if (!RowDescriptionMessage.TryRead(body, encoding, out FieldDescription[] fields))
        {
            return false;
        }

        names = Array.ConvertAll(fields, field => field.Name);
        return true;
    }

    /// <summary>Decodes a DataRow of text-format values (null for SQL NULL).</summary>
    public static bool TryReadTextRow(in ReadOnlySequence<byte> body, Encoding encoding, out string?[] values) =>
        DataRowMessage.TryReadText(body, encoding, out values);

    /// <summary>Decodes the fields of an ErrorResponse or NoticeResponse, in order, as far as they are well formed.</summary>
    public static List<KeyValuePair<char, string>> ReadFields(in ReadOnlySequence<byte> body, Encoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        var fields = new List<KeyValuePair<char, string>>();
        var reader = new SequenceReader<byte>(body);
        ErrorNoticeMessage.ReadFieldsInto(ref reader, encoding, fields);
        return fields;
    }

    /// <summary>Writes an ErrorResponse or NoticeResponse with the given fields.</summary>
    public static void WriteFields(IBufferWriter<byte> writer, BackendMessageCode code, Encoding encoding, IEnumerable<KeyValuePair<char, string>> fields) =>
        ErrorNoticeMessage.Write(writer, code, encoding, fields);
}
